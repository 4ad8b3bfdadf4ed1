#!/usr/bin/env python3
"""The nccl transport beside CUDA-IPC and raw NCCL send/recv (scripts/gpu_run.sh nccl).

Reads OUT/demo_{nccl,ipc}_*.json (one JSON line of `weightsync demo --json` each) and
OUT/nccl_raw{,_pieces}.json (bench/gpu/nccl_sendrecv.py), prints a table and writes
OUT/nccl_table.json. Per demo: the median over versions 2.. (version 1 pays first-touch costs) of
the update's total seconds and of its write phase (post + drain on the trainers), the write rate
(wire bytes / write seconds) and whether every version was verified. The ratio the issue targets
(>= 0.95): the serial 1 -> 1 NCCL demo's write rate over raw NCCL send/recv of the same bytes.

usage: gpu_nccl_table.py OUT
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def demo_row(d):
    steps = d.get("per_step", [])
    later = steps[1:] or steps
    write = median([s.get("write_s", 0) for s in later])
    wire = median([s.get("wire_bytes", 0) for s in later])
    return {
        "total_s": median([s.get("total_s", 0) for s in later]),
        "write_s": write,
        "write_gbps": wire / write / 1e9 if write > 0 else float("nan"),
        "wire_bytes": wire,
        "writes": median([s.get("writes", 0) for s in later]),
        "verified": bool(d.get("verified")),
        "versions": len(steps),
        "error": d.get("error", ""),
    }


def main():
    out = sys.argv[1]
    names = ["nccl_1to1_serial", "ipc_1to1_serial", "nccl_1to1", "ipc_1to1", "nccl_2to2",
             "ipc_2to2"]
    rows = {}
    print("\n  nccl transport: GLM-5, 5 layers, GPU 0 -> GPU 1 (medians over versions 2..)")
    print(f"    {'demo':<18} {'total s':>8} {'write s':>8} {'write GB/s':>10} {'GB':>6} "
          f"{'versions':>8} {'verified':>8}")
    for n in names:
        d = load(os.path.join(out, f"demo_{n}.json"))
        if not d:
            print(f"    {n:<18} (no result: see gpu_run.log)")
            continue
        r = rows[n] = demo_row(d)
        print(f"    {n:<18} {r['total_s']:8.4f} {r['write_s']:8.4f} {r['write_gbps']:10.1f} "
              f"{r['wire_bytes'] / 1e9:6.2f} {r['versions']:8d} "
              f"{'yes' if r['verified'] else 'NO':>8}" + (f"  {r['error']}" if r["error"] else ""))
    raw = {}
    for key in ("nccl_raw", "nccl_raw_pieces"):
        j = load(os.path.join(out, f"{key}.json")) or {}
        if j.get("status") == "ok":
            raw[key] = j
            print(f"    raw NCCL send/recv, {j['total_bytes'] / 1e9:.2f} GB in "
                  f"{j['piece_bytes'] / 2**20:.1f} MiB pieces: best {j['best_gbps']:.1f} GB/s, "
                  f"avg {j['avg_gbps']:.1f} (NCCL {j.get('nccl_version')})")
        elif j:
            print(f"    raw NCCL ({key}): {j.get('status')} {j.get('reason', '')}")
    figures = {"demos": rows, "raw": {k: {f: v.get(f) for f in ("best_gbps", "avg_gbps",
                                                                 "total_bytes", "piece_bytes")}
                                      for k, v in raw.items()}}
    ours = rows.get("nccl_1to1_serial")
    if ours:
        for key, j in raw.items():
            ratio = ours["write_gbps"] / j["best_gbps"]
            figures[f"ratio_vs_{key}"] = ratio
            print(f"    nccl 1 -> 1 write rate / {key} best: x{ratio:.3f} (target >= 0.95)")
    for shape in ("1to1_serial", "1to1", "2to2"):
        a, b = rows.get(f"nccl_{shape}"), rows.get(f"ipc_{shape}")
        if a and b and b["total_s"] > 0:
            figures[f"nccl_over_ipc_total_{shape}"] = a["total_s"] / b["total_s"]
            print(f"    {shape}: nccl update time / cuda_ipc: x{a['total_s'] / b['total_s']:.3f}")
    with open(os.path.join(out, "nccl_table.json"), "w") as f:
        json.dump(figures, f, indent=2, default=str)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
