#!/usr/bin/env python3
"""The fixed cost of a version: the whole update (request -> every receiver resumed) of a model
of about 1 MB, where moving and converting the bytes costs next to nothing, 1 trainer rank ->
1 inference rank, median of versions 2.. (issue 13, part 4).

    python3 bench/e2e/version_cost.py --build build [--device cuda --trainer-gpu 0
        --inference-gpu 1] [--steps 200] --json-out bench/results/version_cost_cpu.json

Runs `weightsync demo` (local processes, real coordinator and sockets) and prints the phases
(pause, convert, write, landed barrier, hook) beside the total; writes one JSON with the
command. The byte-for-byte check runs after every version but outside the update's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHASES = ("pause_s", "convert_s", "write_s", "barrier_s", "hook_s", "total_s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", default="llama-tiny")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--trainer-gpu", type=int, default=0)
    ap.add_argument("--inference-gpu", type=int, default=0)
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()

    cmd = [os.path.join(ROOT, args.build, "weightsync"), "demo", "--model", args.model,
           "--layers", str(args.layers), "--trainer-ranks", "1", "--trainer-ep", "1",
           "--inference-engines", "1", "--inference-ranks", "1", "--inference-ep", "1",
           "--steps", str(args.steps), "--device", args.device, "--json"]
    if args.device == "cuda":
        cmd += ["--trainer-gpus", str(args.trainer_gpu), "--inference-gpus",
                str(args.inference_gpu)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith('{"checked_bytes')]
    if out.returncode != 0 or not lines:
        print(f"demo failed ({out.returncode}):\n{out.stdout}\n{out.stderr}", file=sys.stderr)
        return 1
    demo = json.loads(lines[-1])
    steps = demo["per_step"][1:] or demo["per_step"]
    medians = {p: statistics.median(s[p] for s in steps) for p in PHASES}
    p90 = sorted(s["total_s"] for s in steps)[int(0.9 * (len(steps) - 1))]
    print(f"{args.model} ({args.layers} layer(s)), {steps[0]['wire_bytes'] / 1e6:.2f} MB per "
          f"version, {args.device}, 1 -> 1, median of versions 2..{args.steps}:")
    print("  " + "  ".join(f"{p[:-2]} {medians[p] * 1e3:.2f} ms" for p in PHASES)
          + f"  (total p90 {p90 * 1e3:.2f} ms)  verified {demo['verified']}")
    if args.json_out:
        report = {"command": shlex.join([sys.executable, *sys.argv]), "demo_command":
                  shlex.join(cmd), "model": args.model, "layers": args.layers,
                  "device": args.device, "steps": args.steps,
                  "wire_bytes": steps[0]["wire_bytes"], "verified": demo["verified"],
                  "median_s": medians, "total_p90_s": p90, "per_step": demo["per_step"]}
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if demo["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
