"""The Python push on GPUs next to the engine's own update of the same shape, in one run.

    python3 bench/python/bench_push_torch.py --build build-gpu --layers 4 --versions 5 \
        [--fsdp2] --json-out bench/results/push_torch.json

1 -> 1: a trainer process holds GLM-5's trainer tensors (real dimensions) as plain CUDA tensors
on cuda:0 and pushes with WeightSender into a WeightReceiver process whose module lives on cuda:1
(the processes are started with fork + exec before anything touches CUDA; this driver never
does). The weights of version v are the job's synthetic weights, written in place on the GPU
before each push (the "optimizer step", not timed), so the receiver checks the last version byte
for byte against the reference conversion on its GPU. Then `weightsync demo --device cuda` runs
the same shape (its update: request -> every receiver resumed). The ratio is the median Python
push() (wall clock, everything included) of versions 2.. over the demo's median update of
versions 2...

--fsdp2 adds the FSDP2 run: `torchrun --nproc-per-node 2 tests/python/fsdp2_push.py` (2 trainer
ranks, fully_shard, -> 1 engine of 2 ranks on the same GPUs, bit-exact every version) next to
the demo of that shape. Prints a table and writes one JSON with the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# -- the two worker processes of the 1 -> 1 run ---------------------------------------------------

def rss_gib() -> tuple[float, float]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / (1 << 20),
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20))


def mark(what: str) -> None:
    """A timestamped line in the engine's log format (stderr), to place its start-up logs."""
    now = time.time()
    print(f"[{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}] "
          f"[bench] {what}", file=sys.stderr, flush=True)


def nested(tensors: dict[str, Any]) -> Any:
    import torch
    root = torch.nn.Module()
    for name, tensor in tensors.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if name.endswith("_scale_inv"):
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    return root


def trainer(cfg: dict) -> dict:
    import torch

    import weightsync as ws
    gpu = cfg["gpu"]
    torch.cuda.set_device(gpu)
    sender = ws.WeightSender(cfg["coordinator"], cfg["job"], 0)
    layout, seed = sender.layout, sender.spec.seed
    tensors = {s.name: torch.empty(tuple(s.shape), dtype=ws.torch_interop.torch_dtype(s.dtype),
                                   device=f"cuda:{gpu}") for s in layout.sources}

    def step(version: int) -> None:  # the optimizer step: the version's weights, in place
        for name, t in tensors.items():
            ws._core.synthetic_fill_cuda(layout, name, seed, version, int(t.data_ptr()),
                                         device=gpu)
        torch.cuda.synchronize()

    step(1)
    free0, _ = torch.cuda.mem_get_info(gpu)
    rss0, _ = rss_gib()
    print("READY", flush=True)
    sys.stdin.readline()  # GO: the receiver has registered and is connecting
    ws._core.set_log_level("debug")  # the agents' start-up steps, timestamped, on stderr
    mark("trainer: register")
    wall0 = time.time()
    t0 = time.perf_counter()
    sender.register(tensors)
    t1 = time.perf_counter()
    mark("trainer: connect")
    sender.connect()
    t2 = time.perf_counter()
    mark("trainer: connected")
    ws._core.set_log_level("warn")
    free1, _ = torch.cuda.mem_get_info(gpu)
    rss1, peak1 = rss_gib()
    pushes, metrics = [], []
    for version in range(1, cfg["versions"] + 1):
        if version > 1:
            step(version)
        start = time.perf_counter()
        metrics.append(sender.push(version))
        pushes.append(time.perf_counter() - start)
    return {"register_s": t1 - t0, "connect_s": t2 - t1, "register_wall": wall0,
            "push_s": pushes, "metrics": metrics,
            "device": sender.device, "slot_bytes": sender.slot_bytes,
            "source_bytes": sum(t.numel() * t.element_size() for t in tensors.values()),
            "gpu_bytes_taken_by_register_connect": free0 - free1,
            "torch_allocated_bytes": torch.cuda.memory_allocated(gpu),
            "host_rss_gib_before": rss0, "host_rss_gib_after": rss1, "host_peak_rss_gib": peak1,
            "pinned_host_bytes": 0}


def receiver(cfg: dict) -> dict:
    import torch

    import weightsync as ws
    gpu = cfg["gpu"]
    torch.cuda.set_device(gpu)
    rec = ws.WeightReceiver(cfg["coordinator"], cfg["job"], engine=0, rank=0)
    if cfg.get("receiver_arena"):
        # Every destination tensor carved from one allocation (256-byte aligned), as the demo's
        # receivers hold them, instead of one caching-allocator block each.
        offsets, total = [], 0
        for t in rec.expected:
            total = (total + 255) // 256 * 256
            offsets.append(total)
            total += t.bytes
        # Views of a torch tensor are refused by register() (a view into a larger storage), so
        # each piece becomes a tensor of its own storage through CuPy and DLPack.
        import cupy
        arena = torch.zeros(total, dtype=torch.uint8, device=f"cuda:{gpu}")

        def carve(t: Any, offset: int) -> Any:
            mem = cupy.cuda.UnownedMemory(arena.data_ptr() + offset, t.bytes, arena, gpu)
            piece = cupy.ndarray((t.bytes,), cupy.uint8, cupy.cuda.MemoryPointer(mem, 0))
            return (torch.from_dlpack(piece).view(ws.torch_interop.torch_dtype(t.dtype))
                    .view(tuple(t.shape)))

        model = nested({t.name: carve(t, o) for t, o in zip(rec.expected, offsets)})
    else:
        model = nested({t.name: ws.torch_interop.empty(t.shape, t.dtype, device=f"cuda:{gpu}")
                        for t in rec.expected})
    torch.cuda.synchronize()
    ws._core.set_log_level("info")
    mark("receiver: register")
    t0 = time.perf_counter()
    rec.register(model)
    t1 = time.perf_counter()
    print("REGISTERED", flush=True)
    mark("receiver: connect")
    wall1 = time.time()
    rec.connect()
    t2 = time.perf_counter()
    mark("receiver: connected")
    ws._core.set_log_level("warn")
    results = [rec.update() for _ in range(cfg["versions"])]
    lookup = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    bad = ws._core.compare_reference_cuda(rec.layout, rec.peer,
                                          [int(lookup[t.name].data_ptr()) for t in rec.expected],
                                          gpu, seed=rec.spec.seed, version=cfg["versions"])
    return {"register_s": t1 - t0, "connect_s": t2 - t1, "connect_wall": wall1,
            "device": rec.device,
            "hook_s": [r["hook_seconds"] for r in results],
            "checked_bytes": sum(t.bytes for t in rec.expected),
            "mismatched_bytes": sum(bad.values()),
            "mismatched_tensors": [n for n, b in bad.items() if b]}


# -- the driver -----------------------------------------------------------------------------------

def spawn(role: str, cfg: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role,
                             json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=os.environ.copy())


def expect(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    if line.strip() != word:
        rest = proc.communicate(timeout=60)[0]
        raise RuntimeError(f"worker said {line!r} instead of {word}:\n{rest}")


def result_of(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed (exit {proc.returncode}):\n{out}")
    return json.loads(lines[-1])


def cpp_trainer_result(proc: subprocess.Popen, timeout: float) -> dict:
    """The metrics a `weightsync trainer -v` logs per version, as the Python trainer reports
    them (its register/connect are not timed apart)."""
    out, _ = proc.communicate(timeout=timeout)
    metrics = [json.loads(line.split(": ", 1)[1]) for line in out.splitlines()
               if "] rank 0 version " in line and ": {" in line]
    if proc.returncode != 0 or not metrics:
        raise RuntimeError(f"weightsync trainer failed (exit {proc.returncode}):\n{out}")
    nan = float("nan")
    return {"metrics": metrics, "push_s": [m["total_s"] for m in metrics], "register_s": nan,
            "connect_s": nan, "slot_bytes": 0, "gpu_bytes_taken_by_register_connect": 0,
            "host_rss_gib_before": nan, "host_rss_gib_after": nan, "host_peak_rss_gib": nan}


def cpp_receiver_result(proc: subprocess.Popen, timeout: float) -> dict:
    """`weightsync inference -v` checked every version itself (the job verifies): it fails
    on a mismatch."""
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"weightsync inference failed (exit {proc.returncode}):\n{out}")
    return {"mismatched_bytes": 0, "verified_by": "weightsync inference (every version)"}


def python_one_to_one(args: argparse.Namespace) -> dict:
    import weightsync as ws  # no CUDA in this process
    coordinator = ws.Coordinator("127.0.0.1", 0)
    job = f"bench-torch-{os.getpid()}"
    spec = ws.job_spec(
        "glm5", layers=args.layers, trainer_ranks=1, engines=1, engine_ranks=1, engine_ep=1,
        init_timeout=300.0, step_timeout=300.0, pipeline=not args.no_pipeline)
    if args.cpp_side:
        # The C++ agent of that side (`weightsync trainer|inference`, as the demo starts them)
        # needs the job's device and GPUs; the C++ receiver checks every version against the
        # job's synthetic weights, which the Python trainer pushes.
        fields = json.loads(spec.to_json())
        fields.update(device="cuda", trainer_gpus=[args.trainer_gpu],
                      inference_gpus=[args.inference_gpu], steps=args.versions,
                      verify=args.cpp_side == "receiver")
        spec = ws.JobSpec.from_json(json.dumps(fields))
    ws.publish_job(coordinator, job, spec)
    cfg = {"coordinator": coordinator.address, "job": job, "versions": args.versions,
           "receiver_arena": args.receiver_arena}
    cli = [os.path.join(ROOT, args.build, "weightsync")]
    common = ["--coordinator", coordinator.address, "--job", job, "-v"]
    if args.cpp_side == "receiver":
        rec = subprocess.Popen([*cli, "inference", *common, "--engine", "0", "--rank", "0"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    else:
        rec = spawn("receiver", {**cfg, "gpu": args.inference_gpu})
    if args.cpp_side == "trainer":
        tra = subprocess.Popen([*cli, "trainer", *common, "--rank", "0"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    else:
        tra = spawn("trainer", {**cfg, "gpu": args.trainer_gpu})
    seen: dict[str, float] = {}  # when each start-up key appeared in the coordinator
    done = threading.Event()

    def watch() -> None:
        store = coordinator.job_store(job)
        while not done.is_set():
            now = time.time()
            for key, _ in store.list("init/"):
                seen.setdefault(key, now)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        if args.cpp_side != "trainer":
            expect(tra, "READY")
        if args.cpp_side != "receiver":
            expect(rec, "REGISTERED")
        watcher.start()
        if args.cpp_side != "trainer":
            tra.stdin.write("GO\n")
            tra.stdin.flush()
            t = result_of(tra, 900)
        else:
            t = cpp_trainer_result(tra, 900)
        r = result_of(rec, 300) if args.cpp_side != "receiver" else cpp_receiver_result(rec, 300)
    finally:
        done.set()
        for p in (tra, rec):
            if p.poll() is None:
                p.kill()
        coordinator.stop()
    # Seconds after the trainer's register() began (the receiver's connect() began at
    # receiver_connect_s on the same clock).
    if "register_wall" in t:
        t["init_keys_s"] = {k: round(v - t["register_wall"], 4)
                            for k, v in sorted(seen.items(), key=lambda x: x[1])}
    if "connect_wall" in r and "register_wall" in t:
        t["receiver_connect_s"] = round(r["connect_wall"] - t["register_wall"], 4)
    return {"trainer": t, "receiver": r}


def demo(args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [os.path.join(ROOT, args.build, "weightsync"), "demo", "--device", "cuda", "--model",
           "glm5", "--layers", str(args.layers), "--steps", str(args.versions), "--json",
           "--timeout", "600", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith('{"checked_bytes')]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"demo failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result = json.loads(lines[-1])
    result["command"] = shlex.join(cmd)
    return result


def median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] or values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["trainer", "receiver"])
    ap.add_argument("config", nargs="?")
    ap.add_argument("--build", default="build-gpu")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--trainer-gpu", type=int, default=0)
    ap.add_argument("--inference-gpu", type=int, default=1)
    ap.add_argument("--fsdp2", action="store_true", help="also the FSDP2 run (2 GPUs)")
    ap.add_argument("--fsdp2-result", default="",
                    help="the JSON of a tests/python/fsdp2_push.py run of this job (implies "
                         "--fsdp2; scripts/gpu_run.sh runs that test first and passes it here)")
    ap.add_argument("--receiver-arena", action="store_true",
                    help="the receiver's tensors are views of one allocation (as the demo's "
                         "receivers hold them), not one allocation each")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="convert everything, then write everything (each phase alone), in the "
                         "Python push and its demo")
    ap.add_argument("--cpp-side", choices=["trainer", "receiver"],
                    help="that side runs as the C++ agent the demo starts (`weightsync trainer` "
                         "with the job's synthetic weights, or `weightsync inference` with its own "
                         "arena), the other stays Python: which side makes the demo's write "
                         "phase differ")
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()
    if args.role:
        out = (trainer if args.role == "trainer" else receiver)(json.loads(args.config))
        print(json.dumps(out), flush=True)
        return 0

    # The package built next to the engine, for this process and every worker it starts.
    package = os.path.join(ROOT, args.build, "python")
    sys.path.insert(0, package)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (package, os.environ.get("PYTHONPATH", "")) if p)
    report: dict[str, Any] = {"command": shlex.join([sys.executable, *sys.argv]),
                              "layers": args.layers, "versions": args.versions,
                              "receiver_arena": args.receiver_arena,
                              "pipeline": not args.no_pipeline, "cpp_side": args.cpp_side}
    rows = []
    try:
        report["one_to_one"] = one_to_one(args)
        r = report["one_to_one"]
        rows.append(("1 -> 1 (cuda:0 -> cuda:1)", r))
    except Exception as e:  # noqa: BLE001 - reported, and the other run still runs
        report["one_to_one"] = {"error": str(e), "verified": False}
        print(f"1 -> 1 run failed: {e}", file=sys.stderr)
    if args.fsdp2 or args.fsdp2_result:
        try:
            report["fsdp2"] = fsdp2(args)
            rows.append(("FSDP2 2 -> 1 engine x 2 (GPU0+1)", report["fsdp2"]))
        except Exception as e:  # noqa: BLE001
            report["fsdp2"] = {"error": str(e), "verified": False}
            print(f"FSDP2 run failed: {e}", file=sys.stderr)

    print(f"\n{'run':<34} {'python push s':>14} {'demo update s':>14} {'ratio':>7} "
          f"{'target':>7} {'reg+conn s':>11} {'bit-exact':>10}")
    for name, r in rows:
        print(f"{name:<34} {r['python_push_s']:>14.4f} {r['demo_update_s']:>14.4f} "
              f"{r['ratio']:>7.3f} {r['target_ratio']:>7.2f} {r['register_connect_s']:>11.3f} "
              f"{str(r['verified']):>10}")
    t = report["one_to_one"].get("python", {}).get("trainer")
    if t:
        print(f"trainer GPU memory taken by register+connect: "
              f"{t['gpu_bytes_taken_by_register_connect'] / 1e9:.2f} GB (slot arena "
              f"{t['slot_bytes'] / 1e9:.2f} GB); host RSS {t['host_rss_gib_before']:.2f} -> "
              f"{t['host_rss_gib_after']:.2f} GiB (peak {t['host_peak_rss_gib']:.2f}); pinned 0")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)
    ok = report["one_to_one"]["verified"] and report.get("fsdp2", {}).get("verified", True)
    return 0 if ok else 1


def one_to_one(args: argparse.Namespace) -> dict:
    py = python_one_to_one(args)
    t = py["trainer"]
    d = demo(args, ["--trainer-ranks", "1", "--trainer-ep", "1", "--trainer-gpus",
                    str(args.trainer_gpu), "--inference-engines", "1", "--inference-ranks", "1",
                    "--inference-ep", "1", "--inference-gpus", str(args.inference_gpu),
                    *(["--no-pipeline"] if args.no_pipeline else [])])
    ours = median_after_first(t["push_s"])
    theirs = median_after_first([s["total_s"] for s in d["per_step"]])
    return {"python": py, "demo": d, "python_push_s": ours,
            "python_engine_total_s": median_after_first([m["total_s"] for m in t["metrics"]]),
            "demo_update_s": theirs, "ratio": ours / theirs,
            "register_connect_s": t["register_s"] + t["connect_s"],
            "verified": py["receiver"]["mismatched_bytes"] == 0 and d["verified"],
            "target_ratio": 1.10, "target_register_connect_s": 2.0}


def fsdp2(args: argparse.Namespace) -> dict:
    out = args.fsdp2_result or os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                            f"fsdp2-{os.getpid()}.json")
    if not args.fsdp2_result:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               os.path.join(ROOT, "tests", "python", "fsdp2_push.py"), "--layers",
               str(args.layers), "--versions", str(args.versions), "--json-out", out]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if run.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"FSDP2 run failed ({run.returncode}):\n{run.stdout}\n"
                               f"{run.stderr[-6000:]}")
    with open(out) as f:
        fsdp = json.load(f)
    if fsdp["layers"] != args.layers or fsdp["trainer_ranks"] != 2:
        raise RuntimeError(f"{out} is another shape ({fsdp['layers']} layers, "
                           f"{fsdp['trainer_ranks']} trainer ranks)")
    d = demo(args, ["--trainer-ranks", "2", "--trainer-ep", "1", "--trainer-gpus", "0", "1",
                    "--inference-engines", "1", "--inference-ranks", "2", "--inference-ep", "2",
                    "--inference-gpus", "0", "1"])
    ours = fsdp["push_s_median_after_first"]
    theirs = median_after_first([s["total_s"] for s in d["per_step"]])
    return {"python": fsdp, "demo": d, "python_push_s": ours,
            "python_engine_total_s": median_after_first(
                [max(r["metrics"][v]["total_s"] for r in fsdp["ranks"])
                 for v in range(fsdp["versions"])]),
            "demo_update_s": theirs, "ratio": ours / theirs,
            "register_connect_s": fsdp["register_connect_s"],
            "verified": fsdp["verified"] and d["verified"], "target_ratio": 1.15,
            "target_register_connect_s": 2.0}

if __name__ == "__main__":
    sys.exit(main())
