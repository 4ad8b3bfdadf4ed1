"""A PyTorch trainer pushing a small GLM-5 through weightsync, version after version.

It hosts the job's coordinator, publishes the job (one trainer rank, one inference rank, the
glm5-tiny layout), registers its model's tensors, and after each "optimizer step" (new values
written in place) pushes them; the inference side receives them converted to vLLM's FP8
kernel format. Run the receiving side in a second terminal:

    python examples/torch_trainer.py
    python examples/vllm_worker.py

or both from one command: python examples/torch_trainer.py --launch-worker
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch

import weightsync as ws
from glm5_example import build_module, trainer_weights


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address the coordinator binds")
    p.add_argument("--port", type=int, default=29610, help="coordinator port")
    p.add_argument("--job", default="glm5-example", help="job id")
    p.add_argument("--model", default="glm5-tiny", help="layout (glm5-tiny, glm5-aligned, ...)")
    p.add_argument("--versions", type=int, default=3, help="weight versions to push")
    p.add_argument("--seed", type=int, default=0, help="seed of the example weights")
    p.add_argument("--launch-worker", action="store_true",
                   help="also start examples/vllm_worker.py as a child process")
    args = p.parse_args()

    coordinator = ws.Coordinator(args.host, args.port)
    spec = ws.job_spec(args.model, transport="ucx")
    ws.publish_job(coordinator, args.job, spec)
    print(f"[trainer] coordinator on {coordinator.address}, job '{args.job}': {args.model}, "
          f"1 trainer rank -> 1 inference rank", flush=True)
    worker = None
    if args.launch_worker:
        worker = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                                "vllm_worker.py"),
                                   "--coordinator", coordinator.address, "--job", args.job,
                                   "--versions", str(args.versions), "--seed", str(args.seed)])

    layout = ws.resolve_layout(args.model)
    model = build_module(trainer_weights(layout, args.seed, 1))
    sender = ws.WeightSender(coordinator.address, args.job, rank=0)
    sender.register(model)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(f"[trainer] registered {len(layout.sources)} tensors ({nbytes / 1e6:.2f} MB, bf16/fp32) "
          "in place", flush=True)
    sender.connect()
    for version in range(1, args.versions + 1):
        if version > 1:
            with torch.no_grad():  # the optimizer step: new values, same tensors
                for name, value in trainer_weights(layout, args.seed, version).items():
                    model.get_parameter(name).copy_(value)
        m = sender.push(version)
        print(f"[trainer] version {version}: converted + FP8-quantized in {m['convert_s']:.4f}"
              f" s, wrote {m['wire_bytes'] / 1e6:.2f} MB in {m['writes']} one-sided writes, "
              f"inference paused {m['total_s']:.4f} s", flush=True)
    sender.close()
    rc = 0
    if worker is not None:
        rc = worker.wait()
        print(f"[trainer] worker exited with {rc}", flush=True)
    coordinator.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
