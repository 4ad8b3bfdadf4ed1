"""A Hugging Face model without a hand-written layout: a transformers trainer (bf16) pushes its
weights into the same architecture converted to block FP8, through a layout derived from the
two models.

    python examples/hf_derive.py                  # a small Qwen3 on the CPU, 3 versions
    python examples/hf_derive.py --device cuda    # trainer on cuda:0, FP8 model on cuda:1

The trainer hosts the coordinator, derives the layout from its model and the FP8 model built on
the meta device (no memory), publishes it in the job spec, and after every AdamW step pushes;
the worker (this file again, `--worker`) registers its FP8 model's own tensors and generates a
few tokens after each version. Needs transformers >= 5. On a machine without transformers' FP8
kernels (they come from the Hugging Face hub), the FP8 linears dequantize their weights.
tests/gpu/python/hf_models.py is the full check (three architectures, generation compared with
the reference converter's model).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch
import transformers
from transformers.integrations import finegrained_fp8
from transformers.quantizers.quantizer_finegrained_fp8 import FineGrainedFP8HfQuantizer

import weightsync as ws

CONFIG = transformers.Qwen3Config(vocab_size=1024, hidden_size=256, intermediate_size=512,
                                  num_hidden_layers=2, num_attention_heads=2,
                                  num_key_value_heads=1, head_dim=128, tie_word_embeddings=False)


def build(device: str, fp8: bool) -> torch.nn.Module:
    """The model in bf16, or converted to 128x128 block FP8 as FineGrainedFP8Config does it."""
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(CONFIG, dtype=torch.bfloat16)
    if fp8:
        quantizer = FineGrainedFP8HfQuantizer(
            transformers.FineGrainedFP8Config(weight_block_size=(128, 128)), pre_quantized=False)
        quantizer._process_model_before_weight_loading(model)  # FP8Linear modules, on meta
        for m in model.modules():
            if isinstance(m, finegrained_fp8.FP8Linear):
                m.to_empty(device=device, recurse=False)  # weightsync fills them
    return model


def dequant_linear(input, weight, weight_scale_inv, block_size=None, bias=None, **_):
    s = weight_scale_inv.repeat_interleave(128, 0)[:weight.shape[0]]
    s = s.repeat_interleave(128, 1)[:, :weight.shape[1]]
    return torch.nn.functional.linear(input.float(), weight.float() * s).to(input.dtype)


def worker(args: argparse.Namespace) -> int:
    device = "cuda:1" if args.device == "cuda" else "cpu"
    try:
        finegrained_fp8.load_finegrained_fp8_kernel()
    except Exception:
        finegrained_fp8.fp8_linear = dequant_linear
    model = build(device, fp8=True).eval()
    receiver = ws.WeightReceiver(args.coordinator, args.job)
    receiver.register(model)  # its own FP8 weights and *_weight_scale_inv, in place
    receiver.connect()
    prompt = torch.arange(2, 10, device=device)[None]
    for _ in range(args.versions):
        result = receiver.update()
        with torch.no_grad():
            out = model.generate(input_ids=prompt, max_new_tokens=8, do_sample=False)
        print(f"[worker] version {result['version']}: greedy tokens {out[0, 8:].tolist()}",
              flush=True)
    receiver.close()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--coordinator", help=argparse.SUPPRESS)
    p.add_argument("--job", default="hf-example", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    device = "cuda:0" if args.device == "cuda" else "cpu"
    trainer = build(device, fp8=False)
    # The two lines: the layout from the two models, and a job that carries it.
    layout = ws.derive_layout(trainer, build("meta", fp8=True), rules="hf-fp8")
    spec = ws.job_spec(model=layout)
    coordinator = ws.Coordinator("127.0.0.1", 0)
    ws.publish_job(coordinator, args.job, spec)
    print(f"[trainer] layout '{layout.name}' {layout.fingerprint}: {len(layout.sources)} trainer "
          f"tensors -> {len(layout.dests)} FP8 model tensors", flush=True)
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                              "--device", args.device, "--versions", str(args.versions),
                              "--coordinator", coordinator.address, "--job", args.job])
    sender = ws.WeightSender(coordinator.address, args.job, rank=0, device=device)
    sender.register(trainer)
    sender.connect()
    optimizer = torch.optim.AdamW(trainer.parameters(), lr=1e-3)
    for version in range(1, args.versions + 1):
        batch = torch.randint(2, CONFIG.vocab_size, (4, 64), device=device)
        loss = trainer(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        m = sender.push(version)
        print(f"[trainer] version {version}: loss {loss.item():.3f}, pushed "
              f"{m['wire_bytes'] / 1e6:.2f} MB in {m['total_s']:.4f} s", flush=True)
    sender.close()
    rc = child.wait()
    coordinator.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
