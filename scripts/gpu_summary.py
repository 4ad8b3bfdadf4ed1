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


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


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
    figures = {}  # the targets, measured in this run -> summary.json
    ours = load(os.path.join(out, "quant_ours.json")) or {}
    torch = load(os.path.join(out, "quant_torch.json")) or {}
    tc = {r.get("case"): r for r in torch.get("results", [])}
    if ours:
        print("\n  FP8 block quantization (TB/s of minimum traffic)")
        for r in ours.get("results", []):
            t = tc.get(r.get("case"), {})
            ratio = r["tbps"] / t["tbps"] if t.get("tbps") else float("nan")
            figures.setdefault("quant_tbps", {})[r.get("case")] = r.get("tbps")
            if ratio == ratio:  # no torch.compile twin -> no ratio (NaN is not JSON)
                figures.setdefault("quant_vs_torch_compile", {})[r.get("case")] = ratio
            print(f"    {r.get('case', '?'):<36} ours {r.get('tbps', 0):6.2f}  "
                  f"torch.compile {t.get('tbps', float('nan')):6.2f}  x{ratio:5.2f}  "
                  f"check {r.get('check')}")
    ipc = load(os.path.join(out, "push_ipc.json")) or {}
    nccl = load(os.path.join(out, "push_nccl.json")) or {}
    by_name = {r.get("name", ""): r for r in ipc.get("results", [])}
    ours_push = next((r for n, r in by_name.items() if n.startswith("cuda_ipc")), None)
    peer_push = next((r for n, r in by_name.items() if n.startswith("cudaMemcpyPeer")), None)
    if ours_push and peer_push:
        figures["push_gbps"] = ours_push["avg_gbps"]
        figures["push_vs_memcpy_peer"] = ours_push["avg_gbps"] / peer_push["avg_gbps"]
    if ours_push and nccl.get("best_gbps"):
        figures["nccl_sendrecv_best_gbps"] = nccl["best_gbps"]
        figures["push_vs_nccl_sendrecv_best"] = ours_push["avg_gbps"] / nccl["best_gbps"]
    for name in ("push_ipc.json", "push_nccl.json", "push_plan.json", "push_plan_ballast.json"):
        j = load(os.path.join(out, name))
        if not j:
            continue
        print(f"\n  {name}")
        rows = j.get("rows") or j.get("results") or [j]
        for r in rows:
            label = r.get("name") or r.get("case") or r.get("bench") or ""
            print(f"    {label:<40} " + "  ".join(f"{k} {v:.3f}" for k, v in rate_fields(r).items()))
    overlap = load(os.path.join(out, "overlap.json"))
    if overlap:
        print(f"\n  quantization on GPU0 overlapped with {overlap['copy_bytes'] / 1e9:.1f} GB of "
              f"copy-engine writes to GPU{overlap['peer_device']} "
              f"(copy alone {overlap['copy_alone_ms']:.2f} ms, {overlap['copy_gbps']:.0f} GB/s)")
        for r in overlap["rows"]:
            print(f"    ctas {r['ctas']:>5}: quant alone {r['quant_alone_ms']:7.2f} ms "
                  f"({r['quant_tbps']:.2f} TB/s), both {r['both_ms']:7.2f} ms "
                  f"(quant {r['quant_in_both_ms']:.2f}, copy {r['copy_in_both_ms']:.2f}) "
                  f"= {r['both_over_max_alone']:.3f} x max(alone)  {r['check']}")
    demos = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("demo_") and name.endswith(".json"):
            d = load(os.path.join(out, name))
            if d:
                demos[name[5:-5]] = d
    if demos:
        print("\n  end-to-end demo (median over versions 2.. of the slowest rank: total / convert /"
              " write s)")
    med = {}
    for name, d in demos.items():
        steps = d.get("per_step", [])[1:] or d.get("per_step", [])
        m = {k: median([s[k] for s in steps]) for k in ("total_s", "convert_s", "write_s")}
        med[name] = m
        print(f"    {name:<22} {d.get('transport')} verified={d.get('verified')} "
              f"mismatched={d.get('mismatched_bytes')} "
              f"wire/step={d.get('wire_bytes', 0) / max(1, d.get('steps', 1)) / 1e9:.2f} GB  "
              f"{m['total_s']:.4f} / {m['convert_s']:.4f} / {m['write_s']:.4f}")
    for prefix in ("", "1trainer_"):
        serial, piped = med.get(prefix + "serial"), med.get(prefix + "pipelined")
        if not serial or not piped:
            continue
        alone = max(serial["convert_s"], serial["write_s"])
        figures[f"update_{prefix or '2trainer_'}"[:-1]] = {
            "update_s": piped["total_s"], "convert_alone_s": serial["convert_s"],
            "write_alone_s": serial["write_s"], "update_over_max_alone": piped["total_s"] / alone,
            "serial_update_s": serial["total_s"],
            "verified": demos[prefix + "pipelined"].get("verified") and
            demos[prefix + "serial"].get("verified")}
        print(f"\n  {prefix or '2trainer_'}pipelined: full update {piped['total_s']:.4f} s vs "
              f"max(convert alone {serial['convert_s']:.4f} s, write alone "
              f"{serial['write_s']:.4f} s) = {piped['total_s'] / alone:.3f} x "
              f"(serial update {serial['total_s']:.4f} s)")
    # Issue 13's targets: the full update against the time the link needs for its bytes (at
    # the cudaMemcpyPeer rate of this run), and the write phase alone against the plan benchmark
    # posting the same writes.
    plan = load(os.path.join(out, "push_plan.json")) or {}
    plan_rate = next((r["avg_gbps"] for r in plan.get("results", [])
                      if r.get("name", "").startswith("cuda_ipc")), None)
    for prefix, key in (("", "2trainer"), ("1trainer_", "1trainer")):
        piped, serial = med.get(prefix + "pipelined"), med.get(prefix + "serial")
        d = demos.get(prefix + "pipelined")
        if not piped or not d or not peer_push:
            continue
        wire = d.get("wire_bytes", 0) / max(1, d.get("steps", 1))
        link_s = wire / (peer_push["avg_gbps"] * 1e9)
        entry = {"update_s": piped["total_s"], "wire_bytes": wire, "link_s": link_s,
                 "memcpy_peer_gbps": peer_push["avg_gbps"],
                 "update_over_link_time": piped["total_s"] / link_s, "target": 1.10}
        if serial and plan_rate:
            write_gbps = wire / serial["write_s"] / 1e9
            entry.update(write_alone_gbps=write_gbps, plan_bench_gbps=plan_rate,
                         write_over_plan_bench=write_gbps / plan_rate, write_target=0.95)
        figures.setdefault("link_rate", {})[key] = entry
        print(f"\n  {key}: full update {piped['total_s']:.4f} s = "
              f"{entry['update_over_link_time']:.3f} x the link time ({wire / 1e9:.2f} GB at "
              f"{peer_push['avg_gbps']:.1f} GB/s = {link_s:.4f} s; target <= 1.10)"
              + (f"; write phase alone {entry['write_alone_gbps']:.1f} GB/s = "
                 f"{entry['write_over_plan_bench']:.3f} x the plan benchmark "
                 f"({plan_rate:.1f} GB/s; target >= 0.95)" if "write_alone_gbps" in entry else ""))
    cost = load(os.path.join(out, "version_cost.json"))
    if cost:
        figures["version_cost"] = {"median_total_s": cost.get("median_s", {}).get("total_s"),
                                   "wire_bytes": cost.get("wire_bytes"), "target_s": 0.002,
                                   "verified": cost.get("verified")}
        print(f"\n  fixed cost of a version ({cost.get('model')}, {cost.get('wire_bytes')} bytes, "
              f"{cost.get('device')}): median {figures['version_cost']['median_total_s']} s "
              f"(target <= 0.002 s)")
    soak = load(os.path.join(out, "soak_gpu.json"))
    if soak:
        g = soak.get("growth_per_1000_versions", {})
        gpu = {k.split("/", 1)[1]: v for k, v in g.items() if k.startswith("gpu_bytes/")}
        rss = {k.split("/", 1)[1]: v for k, v in g.items() if k.startswith("rss_bytes/")}
        figures["soak_gpu"] = {"versions": soak.get("versions"), "ok": soak.get("ok"),
                               "growth_per_1000_versions": g}
        print(f"\n  soak ({soak.get('versions')} versions of {soak.get('model')} on the GPUs, ok "
              f"{soak.get('ok')}): growth per 1000 versions: GPU memory max "
              f"{max(gpu.values(), default=float('nan')) / 2**20:+.3f} MiB, RSS max "
              f"{max(rss.values(), default=float('nan')) / 2**20:+.3f} MiB, fds "
              f"{g.get('fds_total', float('nan')):+.2f}, keys {g.get('keys', float('nan')):+.2f}")
    torch_push = load(os.path.join(out, "push_torch.json"))
    if torch_push:
        print("\n  PyTorch push (bench/python/bench_push_torch.py): median push() over versions 2..")
        for key, label in (("one_to_one", "1 -> 1, cuda:0 -> cuda:1"),
                           ("fsdp2", "FSDP2 2 -> engine of 2, GPU0+1")):
            r = torch_push.get(key)
            if not r:
                continue
            if "error" in r:
                print(f"    {label:<32} FAILED: {r['error'][:300]}")
                continue
            figures[f"python_push_{key}"] = {
                k: r[k] for k in ("python_push_s", "demo_update_s", "ratio", "target_ratio",
                                  "register_connect_s", "verified")}
            print(f"    {label:<32} python {r['python_push_s']:.4f} s, demo "
                  f"{r['demo_update_s']:.4f} s = {r['ratio']:.3f} x (target <= "
                  f"{r['target_ratio']}), register+connect {r['register_connect_s']:.3f} s, "
                  f"bit-exact {r['verified']}")
        t = torch_push.get("one_to_one", {}).get("python", {}).get("trainer")
        if t:
            figures["python_trainer_memory"] = {
                k: t[k] for k in ("slot_bytes", "gpu_bytes_taken_by_register_connect",
                                  "host_rss_gib_before", "host_rss_gib_after",
                                  "host_peak_rss_gib", "pinned_host_bytes")}
            print(f"    trainer: slot arena {t['slot_bytes'] / 1e9:.2f} GB, GPU memory taken by "
                  f"register+connect {t['gpu_bytes_taken_by_register_connect'] / 1e9:.2f} GB, "
                  f"host RSS {t['host_rss_gib_before']:.2f} -> {t['host_rss_gib_after']:.2f} GiB")
    hf = load(os.path.join(out, "hf_models.json"))
    if hf:
        print(f"\n  Hugging Face models (tests/gpu/python/hf_models.py, transformers "
              f"{hf.get('transformers')}): derived layout, bf16 trainer -> block-FP8 model")
        for arch, r in hf.get("archs", {}).items():
            if "error" in r:
                print(f"    {arch:<12} FAILED: {r['error'][:300]}")
                continue
            vs = r["versions"]
            figures.setdefault("hf_models", {})[arch] = {
                "ok": r["ok"], "parameters": r["parameters"], "fp8_matmul": r["fp8_matmul"],
                "generation_equal": [v["generation_equal"] for v in vs],
                "mismatched_bytes": [v["mismatched_bytes"] for v in vs],
                "logits_max_abs_err": [v["logits_max_abs_err"] for v in vs],
                "logits_mean_abs_err": [v["logits_mean_abs_err"] for v in vs]}
            print(f"    {arch:<12} {r['parameters'] / 1e6:6.1f} M params, {len(vs)} versions: "
                  f"generation equal {all(v['generation_equal'] for v in vs)}, bytes equal "
                  f"{all(v['mismatched_bytes'] == 0 for v in vs)}, max|dlogit| "
                  f"{max(v['logits_max_abs_err'] for v in vs):.4f}, mean|dlogit| "
                  f"{max(v['logits_mean_abs_err'] for v in vs):.5f} -> {'ok' if r['ok'] else 'FAILED'}")
    fs = load(os.path.join(out, "hf_models_fs.json"))
    if fs:
        print(f"\n  Filesystem checkpoints opened by transformers' from_pretrained "
              f"(hf_models.py --transport filesystem, transformers {fs.get('transformers')})")
        for arch, r in fs.get("archs", {}).items():
            if "error" in r:
                print(f"    {arch:<12} FAILED: {r['error'][:300]}")
                continue
            cs = [v.get("checkpoint", {}) for v in r["versions"]]
            figures.setdefault("hf_checkpoints", {})[arch] = {
                "ok": r["ok"], "checkpoint": cs,
                "mismatched_bytes": [v["mismatched_bytes"] for v in r["versions"]]}
            print(f"    {arch:<12} {len(cs)} versions: tensors loaded native "
                  f"{[c.get('tensors_native') for c in cs]}, dequantized "
                  f"{[c.get('tensors_dequantized') for c in cs]}, native bytes differing "
                  f"{[c.get('native_mismatched_bytes') for c in cs]} -> "
                  f"{'ok' if r['ok'] else 'FAILED'}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"command": "bash scripts/gpu_run.sh " + os.environ.get("MODE", "?"),
                   "host": host(out), "steps": dict(zip(names, states)), "figures": figures},
                  f, indent=2)


def host(out):
    try:
        with open(os.path.join(out, "gpus.csv")) as f:
            return f.read().strip().splitlines()
    except OSError:
        return []


if __name__ == "__main__":
    main()
