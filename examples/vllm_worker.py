"""An inference worker receiving a small GLM-5 through weightsync's vLLM worker extension.

vLLM cannot be installed here, so a stand-in worker plays vLLM's part: it has what vLLM's GPU
worker gives an extension (self.model_runner.model, self.rank) and calls the extension's methods
the way collective_rpc would. With real vLLM the same three calls are:

    llm = LLM(model=..., worker_extension_cls="weightsync.vllm.WeightSyncWorkerExtension")
    llm.collective_rpc("weightsync_init", args=(coordinator, job))
    llm.collective_rpc("weightsync_update", args=(version,))   # generation paused
    llm.collective_rpc("weightsync_close")

After every version it rebuilds the trainer's weights (examples/glm5_example.py), converts them
with weightsync's C++ reference converter and checks every byte it received against that.
Start examples/torch_trainer.py first (it hosts the coordinator).
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import torch

import weightsync as ws
from glm5_example import build_module, trainer_weights
from weightsync.vllm import WeightSyncWorkerExtension


class StandInWorker(WeightSyncWorkerExtension):
    """vLLM's worker as an extension sees it: the model, the rank and the device."""

    def __init__(self, model: torch.nn.Module, rank: int = 0) -> None:
        self.model_runner = SimpleNamespace(model=model)
        self.rank = rank
        self.device = torch.device("cpu")


def dequantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """FP8 e4m3 (uint8 codes on torch without float8) x 128x128 block scales -> float32."""
    codes = weight.reshape(-1).view(torch.uint8).long()
    sign = 1.0 - 2.0 * (codes >> 7).float()
    exponent, mantissa = (codes >> 3) & 0xF, (codes & 7).float()
    value = torch.where(exponent == 0, mantissa / 8 * 2.0 ** -6,
                        (1 + mantissa / 8) * torch.pow(2.0, (exponent - 7).float()))
    rows, cols = weight.shape
    blocks = scale.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
    return (sign * value).reshape(rows, cols) * blocks


def recompute_mla(model: torch.nn.Module, version: int) -> None:
    """The post-update hook: vLLM's MLA attention keeps W_UV / W_UK_T derived from kv_b_proj;
    they must be recomputed from the new weights before generation resumes."""
    model.absorbed = {name: dequantize(p.detach(), model.get_buffer(name + "_scale_inv"))
                      for name, p in model.named_parameters()
                      if name.endswith("self_attn.kv_b_proj.weight")}
    model.absorbed_version = version


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coordinator", default="127.0.0.1:29610", help="host:port of the coordinator")
    p.add_argument("--job", default="glm5-example")
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="the trainer's --seed")
    p.add_argument("--engine", type=int, default=0)
    p.add_argument("--rank", type=int, default=0)
    args = p.parse_args()

    spec = ws.read_job(args.coordinator, args.job)
    layout = ws.job_layout(spec)
    peer = ws.find_peer(spec, args.engine, args.rank)
    # The engine's own tensors (vLLM would have loaded the FP8 checkpoint into them).
    model = build_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                          for t in ws.local_tensors(layout, peer)})
    worker = StandInWorker(model, rank=args.rank)
    info = worker.weightsync_init(args.coordinator, args.job, engine=args.engine,
                                  after_update="__main__:recompute_mla")
    print(f"[worker] {info['peer']}: registered {info['tensors']} tensors "
          f"({info['bytes'] / 1e6:.2f} MB: FP8 weights, fp32 scales, bf16/fp32 copies) in place",
          flush=True)
    failures = 0
    for version in range(1, args.versions + 1):
        result = worker.weightsync_update(version)
        want = ws.reference_tensors(layout, peer, trainer_weights(layout, args.seed, version))
        got = dict(model.named_parameters()) | dict(model.named_buffers())
        raw = ws.torch_interop.raw_bytes
        bad = [n for n, w in want.items() if not torch.equal(raw(got[n]), raw(w))]
        total = sum(w.numel() * w.element_size() for w in want.values())
        absorbed_ok = model.absorbed_version == version and all(
            torch.equal(a, dequantize(want[n], want[n + "_scale_inv"]))
            for n, a in model.absorbed.items())
        failures += len(bad) + (not absorbed_ok)
        print(f"[worker] version {version}: {len(want)} tensors, {total / 1e6:.2f} MB "
              f"{'bit-exact' if not bad else f'DIFFERENT in {bad[:3]}'} vs the C++ reference "
              f"converter; MLA hook recomputed {len(model.absorbed)} absorbed weights "
              f"{'from the new weights' if absorbed_ok else 'WRONG'}; paused "
              f"{result['wait_seconds'] + result['hook_seconds']:.4f} s", flush=True)
    worker.weightsync_close()
    print(f"[worker] {'all versions verified' if failures == 0 else f'{failures} FAILURES'}",
          flush=True)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
