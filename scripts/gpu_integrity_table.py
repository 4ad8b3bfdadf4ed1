#!/usr/bin/env python3
"""Issue 18 on the GPUs: the table of `gpu_run.sh integrity` from its demo_i_*.json files.

Checksum overhead: the median update time (total_s, the first version dropped as warm-up) of the
--checksum runs over that of the plain runs, both repetitions pooled. Flip: per version, how long
the inference ranks' readers were parked (paused_s, the slowest rank) over the wire time of the
same version (post_s + drain_s, the slowest trainer), with --staging (parked from the request on)
and with --flip (parked only for the copy staging -> live, the hooks and the commit). Projected:
the flip's pause scaled to the production shape's bytes per receiver GPU at the same copy rate,
over its predicted wire time at 50 GB/s (1.33 s, i.e. 66.5 GB per receiver link).
Usage: gpu_integrity_table.py OUT_DIR [--json-out FILE]
"""
import json
import statistics
import sys
from pathlib import Path

PRODUCTION_WIRE_S = 1.33
PRODUCTION_BYTES = 50e9 * PRODUCTION_WIRE_S


def steps(out, name):
    path = Path(out) / f"demo_{name}.json"
    if not path.exists() or path.stat().st_size == 0:
        return None
    d = json.loads(path.read_text())
    s = d.get("per_step", [])
    return d, (s[1:] or s)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def main():
    out = sys.argv[1]
    json_out = sys.argv[sys.argv.index("--json-out") + 1] if "--json-out" in sys.argv else None
    result = {"command": "bash scripts/gpu_run.sh integrity", "runs": {}}
    totals = {"plain": [], "checksum": []}
    for kind in totals:
        for i in (1, 2):
            got = steps(out, f"i_{kind}_{i}")
            if got:
                totals[kind] += [s["total_s"] for s in got[1]]
    plain, checked = med(totals["plain"]), med(totals["checksum"])
    overhead = checked / plain - 1 if plain == plain and plain > 0 else float("nan")
    result["checksum"] = {"update_s_plain": plain, "update_s_checksum": checked,
                          "overhead": overhead, "target": 0.03}
    print(f"{'checksum overhead (GLM-5 5 layers, update time)':<52} "
          f"{plain:.4f} s -> {checked:.4f} s  {overhead * 100:+.2f} %  (target <= 3 %)")
    print(f"{'run':<18} {'wire s':>8} {'paused s':>9} {'paused/wire':>12} {'apply s':>8} "
          f"{'update s':>9} {'verified':>9}")
    for name in ("i_staging", "i_flip", "i_flip_verified"):
        got = steps(out, name)
        if not got:
            print(f"{name:<18} missing")
            continue
        d, s = got
        wire = med([x["post_s"] + x["drain_s"] for x in s])
        paused = med([x.get("paused_s") for x in s])
        ratio = med([x.get("paused_s", 0) / (x["post_s"] + x["drain_s"]) for x in s])
        apply = med([x.get("hook_s") for x in s])
        total = med([x["total_s"] for x in s])
        wire_bytes = med([x.get("wire_bytes") for x in s])
        row = {"wire_s": wire, "paused_s": paused, "paused_over_wire": ratio, "apply_s": apply,
               "update_s": total, "wire_bytes": wire_bytes,
               "mismatched_bytes": d.get("mismatched_bytes"), "verified": d.get("verified")}
        if name.startswith("i_flip") and wire_bytes == wire_bytes and wire_bytes > 0:
            row["projected_pause_over_wire_50gbps"] = (
                paused * PRODUCTION_BYTES / wire_bytes / PRODUCTION_WIRE_S)
        result["runs"][name] = row
        print(f"{name:<18} {wire:>8.4f} {paused:>9.4f} {ratio:>12.3f} {apply:>8.4f} "
              f"{total:>9.4f} {str(d.get('verified')):>9}")
    flip = result["runs"].get("i_flip", {})
    if "projected_pause_over_wire_50gbps" in flip:
        print(f"flip pause / wire: {flip['paused_over_wire']:.3f} (target <= 0.2); projected at "
              f"50 GB/s for the production shape: {flip['projected_pause_over_wire_50gbps']:.4f} "
              f"(target <= 0.05)")
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
