#!/usr/bin/env python3
"""Times torch.compile (Inductor -> Triton) FP8 128x128 block quantization on bench_quant's sizes.

The peer a user would otherwise pick. Same formula as weightsync's blockQuantizeFp8 (bf16 in, or
fp32 rounded to bf16 first; s = max(amax / 448, 1e-12); q = e4m3(clamp(x / s, -448, 448))).

The compiled function is written as a user would (amax / 448.0). Per case its bytes and scales are
compared with an exact eager variant (block_quant(x, exact=True)): eager with a tensor divisor
uses IEEE division (eager turns division by a Python scalar into a multiply by the reciprocal) and
round-to-nearest-even e4m3, i.e. exactly weightsync's reference; a medium case also checks that
variant against a NumPy port of the reference's bit-level encoder. A nonzero mismatch count means
the compiled kernel rounds differently (e.g. approximate division), not a timing bug.

usage: quant_torch_compile.py [--reps N] [--warmup N] [--mode MODE] [--no-check] [--json-out PATH]
"""

import argparse
import json
import shlex
import statistics
import sys

import numpy as np
import torch

BLOCK = 128
FP8_MAX = 448.0
FLOOR = 1e-12

CASES = [
    ("matrix 16384x16384", torch.bfloat16, (1, 16384, 16384)),
    ("experts 8x4096x6144", torch.bfloat16, (8, 4096, 6144)),
    ("experts 16x4096x6144", torch.bfloat16, (16, 4096, 6144)),
    ("matrix 16384x16384 fp32 source", torch.float32, (1, 16384, 16384)),
]


def block_quant(x, exact=False):
    """x [G, R, C] bf16/fp32 -> (q float8_e4m3fn [G, R, C], s fp32 [G, ceil(R/128), ceil(C/128)])."""
    x = x.to(torch.bfloat16).float()  # quantize the bf16-rounded values, as the C++ kernels do
    g, r, c = x.shape
    rb, cb = -(-r // BLOCK), -(-c // BLOCK)
    if rb * BLOCK != r or cb * BLOCK != c:
        x = torch.nn.functional.pad(x, (0, cb * BLOCK - c, 0, rb * BLOCK - r))
    xb = x.view(g, rb, BLOCK, cb, BLOCK)
    amax = xb.abs().amax(dim=(2, 4), keepdim=True)
    s = torch.clamp(amax / (amax.new_full((), FP8_MAX) if exact else FP8_MAX), min=FLOOR)
    q = (xb / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q.view(g, rb * BLOCK, cb * BLOCK)[:, :r, :c], s.view(g, rb, cb)


def e4m3_bits_numpy(q):
    """NumPy port of weightsync::kernels::f32ToE4m3 (RNE, saturating) for float32 arrays."""
    u = q.view(np.uint32)
    sign = (u >> 24) & 0x80
    a = u & 0x7FFFFFFF
    normal = ((a + 0x7FFFF + ((a >> 20) & 1)) >> 20) - 960
    sub = (np.abs(q) + np.float32(16384.0)).view(np.uint32) - 0x46800000
    mag = np.where(a >= 0x3C800000, normal, sub)
    mag = np.where(a >= 0x43E00000, 0x7E, mag)
    return (sign | mag).astype(np.uint8)


def reference_numpy(x_bf16):
    """weightsync's reference on a [G, R, C] bf16 tensor with R, C multiples of 128."""
    x = x_bf16.float().cpu().numpy()
    g, r, c = x.shape
    xb = x.reshape(g, r // BLOCK, BLOCK, c // BLOCK, BLOCK)
    amax = np.abs(xb).max(axis=(2, 4), keepdims=True)
    s = np.maximum(amax / np.float32(FP8_MAX), np.float32(FLOOR)).astype(np.float32)
    q = np.clip(xb / s, -FP8_MAX, FP8_MAX).astype(np.float32)
    return e4m3_bits_numpy(q).reshape(g, r, c), s.reshape(g, r // BLOCK, c // BLOCK)


def make_source(dtype, shape, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(shape, device="cuda", generator=gen, dtype=torch.float32)
    # Vary magnitudes per row so block scales differ.
    x *= torch.exp2(torch.randint(-8, 4, (shape[0], shape[1], 1), device="cuda", generator=gen))
    return x.to(dtype)


def time_ms(fn, inputs, reps, warmup):
    """GPU time per rep: reps enqueued back to back with an event between each and one wait at
    the end, so the host's launch latency (Python, guards) is not counted, as in bench_quant."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    marks = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    marks[0].record()
    for i in range(reps):
        fn(inputs[i % len(inputs)])
        marks[i + 1].record()
    marks[-1].synchronize()
    return [marks[i].elapsed_time(marks[i + 1]) for i in range(reps)]


def mismatches(a, b):
    a, b = a.contiguous(), b.contiguous()
    return int((a.view(torch.uint8) != b.view(torch.uint8)).sum().item())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--mode", default="default", help="torch.compile mode")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    compiled = torch.compile(block_quant, mode=args.mode, dynamic=False)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    results = []

    if not args.no_check:  # eager == the reference's bit-level definition
        x = make_source(torch.bfloat16, (2, 1024, 1024), 7)
        q, s = block_quant(x, exact=True)
        q_ref, s_ref = reference_numpy(x)
        eager_vs_numpy = int((q.view(torch.uint8).cpu().numpy() != q_ref).sum()) + int(
            (s.cpu().numpy().view(np.uint32) != s_ref.view(np.uint32)).sum())
        print(f"exact eager vs NumPy port of the reference: {eager_vs_numpy} mismatches")
    else:
        eager_vs_numpy = None

    print(f"{'case':34s} {'dtype':>6s} {'median ms':>10s} {'TB/s':>8s} {'byte diffs':>11s} "
          f"{'scale diffs':>12s}")
    for name, dtype, shape in CASES:
        n = shape[0] * shape[1] * shape[2]
        esize = torch.tensor([], dtype=dtype).element_size()
        scales = shape[0] * -(-shape[1] // BLOCK) * -(-shape[2] // BLOCK)
        traffic = n * esize + n + 4 * scales
        sets = max(2, 1 + (2 * l2) // (n * esize))
        inputs = [make_source(dtype, shape, seed) for seed in range(sets)]
        ms = time_ms(compiled, inputs, args.reps, args.warmup)
        med = statistics.median(ms)
        byte_diffs = scale_diffs = None
        if not args.no_check:
            q_c, s_c = compiled(inputs[0])
            q_e, s_e = block_quant(inputs[0], exact=True)
            byte_diffs, scale_diffs = mismatches(q_c, q_e), mismatches(s_c, s_e)
        results.append({
            "case": name, "dtype": str(dtype).replace("torch.", ""), "shape": list(shape),
            "median_ms": med, "min_ms": min(ms), "traffic_bytes": traffic,
            "tbps": traffic / (med * 1e-3) / 1e12, "buffer_sets": sets,
            "byte_mismatches_vs_reference": byte_diffs,
            "scale_mismatches_vs_reference": scale_diffs,
        })
        print(f"{name:34s} {results[-1]['dtype']:>6s} {med:10.4f} {results[-1]['tbps']:8.3f} "
              f"{str(byte_diffs):>11s} {str(scale_diffs):>12s}", flush=True)
        del inputs
        torch.cuda.empty_cache()

    doc = {
        "benchmark": "quant_torch_compile",
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
        "mode": args.mode, "reps": args.reps, "warmup": args.warmup,
        "traffic": "src bytes + 1 B/element + 4 B/scale",
        "eager_vs_numpy_reference_mismatches": eager_vs_numpy, "results": results,
    }
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
