#!/usr/bin/env python3
"""Prints the short table that ends scripts/gpu_run.sh, from the JSON files it left in OUT."""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rate_fields(row):
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and
            (k.endswith("gbps") or k.endswith("tbps") or k.startswith("ratio"))}


def main():
    out = sys.argv[1]
    sep = sys.argv.index("--")
    names, states = sys.argv[2:sep], sys.argv[sep + 1:]
    print("\n==== weightsync GPU run summary ====")
    for n, s in sorted(zip(names, states)):
        print(f"  {n:<22} {s}")
    ours = load(os.path.join(out, "quant_ours.json")) or {}
    torch = load(os.path.join(out, "quant_torch.json")) or {}
    tc = {r.get("case"): r for r in torch.get("results", [])}
    if ours:
        print("\n  FP8 block quantization (TB/s of minimum traffic)")
        for r in ours.get("results", []):
            t = tc.get(r.get("case"), {})
            ratio = r["tbps"] / t["tbps"] if t.get("tbps") else float("nan")
            print(f"    {r.get('case', '?'):<36} ours {r.get('tbps', 0):6.2f}  "
                  f"torch.compile {t.get('tbps', float('nan')):6.2f}  x{ratio:5.2f}  "
                  f"check {r.get('check')}")
    for name in ("push_ipc.json", "push_nccl.json"):
        j = load(os.path.join(out, name))
        if not j:
            continue
        print(f"\n  {name}")
        rows = j.get("rows") or j.get("results") or [j]
        for r in rows:
            label = r.get("name") or r.get("case") or r.get("bench") or ""
            print(f"    {label:<40} " + "  ".join(f"{k} {v:.3f}" for k, v in rate_fields(r).items()))
    path = os.path.join(out, "demo_results.jsonl")
    if os.path.exists(path):
        print("\n  end-to-end demo (per step: total s / convert s / write s, GB/s)")
        with open(path) as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                print(f"    {d.get('model')} {d.get('transport')} verified={d.get('verified')} "
                      f"mismatched={d.get('mismatched_bytes')} wire/step="
                      f"{d.get('wire_bytes', 0) / max(1, d.get('steps', 1)) / 1e9:.2f} GB")
                for s in d.get("per_step", []):
                    print(f"      v{s['version']}: {s['total_s']:.4f} / {s['convert_s']:.4f} / "
                          f"{s['write_s']:.4f}  {s['gbps']:.1f} GB/s")


if __name__ == "__main__":
    main()
