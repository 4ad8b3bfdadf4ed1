#!/usr/bin/env python3
"""Issue 18 on the GPUs: the table of `gpu_run.sh integrity` from its demo_i_*.json files.

Checksum overhead: the median update time (total_s, the first version dropped as warm-up) of the
--checksum runs over that of the plain runs, both repetitions pooled. Flip: per version, the
pause generation saw, over the wire time of the same version (post_s + drain_s, the slowest
trainer): the GPU probe's longest gap between steps (probe_gap_s, the slowest rank: its last step
on version N to its first on N + 1; the issue's measure) and how long the readers were parked
(paused_s), with --staging (parked from the request on), --flip (the ranks swap their live and
staging arenas: parked for the swap, the hooks and the commit) and --flip-copy (parked for a copy
staging -> live at HBM bandwidth instead of the swap). Projected: the flip's pause scaled to the
production shape's bytes per receiver GPU, over its predicted wire time at 50 GB/s (1.33 s, i.e.
66.5 GB per receiver link); for the swap, whose pause does not grow with the bytes, that is an
upper bound.
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
    print(f"{'run':<18} {'flip':>5} {'wire s':>8} {'gap s':>8} {'gap/wire':>9} {'paused s':>9} "
          f"{'paused/wire':>12} {'apply s':>8} {'update s':>9} {'verified':>9}")
    for name in ("i_staging", "i_flip", "i_flip_copy", "i_flip_verified"):
        got = steps(out, name)
        if not got:
            print(f"{name:<18} missing")
            continue
        d, s = got
        wire = med([x["post_s"] + x["drain_s"] for x in s])
        paused = med([x.get("paused_s") for x in s])
        ratio = med([x.get("paused_s", 0) / (x["post_s"] + x["drain_s"]) for x in s])
        # -1: no probe ran (a build without CUDA on the inference side)
        gaps = [x.get("probe_gap_s", -1) for x in s]
        measured = all(g is not None and g >= 0 for g in gaps)
        gap = med(gaps) if measured else float("nan")
        gap_ratio = (med([x["probe_gap_s"] / (x["post_s"] + x["drain_s"]) for x in s])
                     if measured else float("nan"))
        flip_kind = d.get("flip", "?")
        apply = med([x.get("hook_s") for x in s])
        total = med([x["total_s"] for x in s])
        wire_bytes = med([x.get("wire_bytes") for x in s])
        row = {"flip": flip_kind, "wire_s": wire, "probe_gap_s": gap,
               "probe_gap_over_wire": gap_ratio, "paused_s": paused, "paused_over_wire": ratio,
               "apply_s": apply,
               "update_s": total, "wire_bytes": wire_bytes,
               "mismatched_bytes": d.get("mismatched_bytes"), "verified": d.get("verified")}
        if name.startswith("i_flip") and wire_bytes == wire_bytes and wire_bytes > 0:
            pause = gap if gap == gap else paused
            row["projected_pause_over_wire_50gbps"] = (
                pause * PRODUCTION_BYTES / wire_bytes / PRODUCTION_WIRE_S)
        result["runs"][name] = row
        print(f"{name:<18} {flip_kind:>5} {wire:>8.4f} {gap:>8.4f} {gap_ratio:>9.3f} "
              f"{paused:>9.4f} {ratio:>12.3f} {apply:>8.4f} {total:>9.4f} "
              f"{str(d.get('verified')):>9}")
    for name in ("i_flip", "i_flip_copy"):
        flip = result["runs"].get(name, {})
        if "projected_pause_over_wire_50gbps" not in flip:
            continue
        seen = flip["probe_gap_over_wire"]
        measure = "probe gap" if seen == seen else "readers parked"
        seen = seen if seen == seen else flip["paused_over_wire"]
        print(f"{name} ({flip['flip']}): pause / wire by the {measure}: {seen:.3f} "
              f"(target <= 0.2); projected at 50 GB/s for the production shape: "
              f"{flip['projected_pause_over_wire_50gbps']:.4f} (target <= 0.05)")
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
