#!/usr/bin/env python3
"""The table of `scripts/gpu_run.sh probe`: per run, the median over versions 2.. of the
conversion, posting, draining and whole-update seconds and the write rate (wire bytes over
post + drain), from the demo_p_*.json lines and push_torch_*.json files in OUT."""

import glob
import json
import os
import statistics
import sys


def med(values):
    values = values[1:] or values
    return statistics.median(values)


def row(name, steps, wire):
    conv = med([s["convert_s"] for s in steps])
    post = med([s["post_s"] for s in steps])
    drain = med([s["drain_s"] for s in steps])
    total = med([s["total_s"] for s in steps])
    rate = wire / (post + drain) / 1e9 if post + drain > 0 else float("nan")
    return f"  {name:<34} {conv:8.4f} {post:8.4f} {drain:8.4f} {total:8.4f} {rate:9.1f}"


def main() -> int:
    out = sys.argv[1]
    print("  run                                convert     post    drain    total  post+drain GB/s")
    print("  (the rate is the write phase's only where the run is serial: pipelined, writes start"
          " during conversion)")
    for path in sorted(glob.glob(os.path.join(out, "demo_p_*.json"))):
        try:
            d = json.load(open(path))
        except (OSError, ValueError):
            print(f"  {os.path.basename(path)}: no result")
            continue
        name = os.path.basename(path)[5:-5] + (" (serial)" if not d["pipeline"] else "")
        print(row(name, d["per_step"], d["per_step"][0]["wire_bytes"]))
    for path in sorted(glob.glob(os.path.join(out, "push_torch_*.json"))):
        try:
            r = json.load(open(path))["one_to_one"]
            t = r["python"]["trainer"]["metrics"]
        except (OSError, ValueError, KeyError):
            print(f"  {os.path.basename(path)}: no result")
            continue
        name = "python " + os.path.basename(path)[11:-5]
        print(row(name, t, t[0]["wire_bytes"]) + f"  bit-exact {r['verified']}")
        d = r["demo"]
        mode = "pipelined" if d.get("pipeline", True) else "serial"
        print(row(f"  its demo ({mode})", d["per_step"], d["per_step"][0]["wire_bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
