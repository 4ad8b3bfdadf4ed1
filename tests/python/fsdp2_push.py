"""A real FSDP2 trainer pushing GLM-5 into an inference engine on the same GPUs (GPU host only).

    torchrun --nproc-per-node 2 tests/python/fsdp2_push.py --layers 4 --versions 4 --json-out r.json

Every process is trainer rank r on cuda:r: a torch.nn.Module with the layout's source tensors as
parameters, sharded with torch.distributed.fsdp.fully_shard over a 1-D device mesh (real DTensors,
a real NCCL process group; experts are split along dim 0 as EP would split them), and inference
rank r of one engine on the same GPU (colocated, as RL set-ups run them), serving in a background
thread into a module's parameters and *_weight_scale_inv buffers. The WeightSender is given the
FSDP2 module itself. Each version: an in-place "optimizer step" on the local shards, push(), then
the check: every parameter's full_tensor() (NCCL, for the check only) goes into the reference
conversion on the GPU, which must equal every byte rank r received. Exits non-zero on a mismatch.
Rank 0 writes the timings (register, connect, each push) and memory figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import zlib
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import weightsync as ws
from weightsync.torch_interop import torch_dtype

GIB = float(1 << 30)


def nested(tensors: dict[str, Any], parameters: bool) -> torch.nn.Module:
    """A module whose dotted names are the given names (scales as buffers on the inference side)."""
    root = torch.nn.Module()
    for name, tensor in tensors.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if parameters:
            # expert_bias is updated by a rule, not by gradients (as in DeepSeek-style routers).
            module.register_parameter(leaf, torch.nn.Parameter(
                tensor, requires_grad=tensor.dtype == torch.bfloat16))
        elif name.endswith("_scale_inv"):
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    return root


def scale_of(name: str) -> float:
    return 2.0 ** (zlib.crc32(name.encode()) % 9 - 6)


def rss_gib() -> tuple[float, float]:
    """(current, peak) resident host memory of this process."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / (1 << 20),
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="glm5")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--versions", type=int, default=4)
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()

    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", local)

    # The job: FSDP `world` trainer ranks -> one engine of `world` ranks (EP), one GPU per pair.
    holder: list[Any] = [None]
    coordinator = None
    if rank == 0:
        coordinator = ws.Coordinator("127.0.0.1", 0)
        spec = ws.job_spec(args.model, layers=args.layers, trainer_ranks=world, trainer_ep=1,
                           engines=1, engine_ranks=world, engine_ep=world, init_timeout=300.0,
                           step_timeout=300.0)
        job = f"fsdp2-{os.getpid()}"
        ws.publish_job(coordinator, job, spec)
        holder[0] = (coordinator.address, job)
    dist.broadcast_object_list(holder, src=0)
    address, job = holder[0]
    layout = ws.resolve_layout(args.model, args.layers)

    # The trainer's model: built on the meta device, sharded by FSDP2, materialized on the GPU.
    with torch.device("meta"):
        model = nested({s.name: torch.empty(tuple(s.shape), dtype=torch_dtype(s.dtype))
                        for s in layout.sources}, parameters=True)
    mesh = init_device_mesh("cuda", (world,))
    fully_shard(model, mesh=mesh)
    model.to_empty(device=device)
    params = dict(model.named_parameters())
    gen = torch.Generator(device=device)
    with torch.no_grad():
        for name, p in params.items():
            gen.manual_seed(zlib.crc32(f"{name}/{rank}".encode()))
            p.to_local().normal_(0.0, scale_of(name), generator=gen)
    shard_bytes = sum(p.to_local().numel() * p.to_local().element_size() for p in params.values())

    # The colocated inference rank: its module's tensors on the same GPU, served in a thread.
    receiver = ws.WeightReceiver(address, job, engine=0, rank=rank)
    dests = nested({t.name: ws.torch_interop.empty(t.shape, t.dtype, device=device)
                    for t in receiver.expected}, parameters=False)
    receiver.register(dests)
    receiver.start()

    torch.cuda.synchronize()
    dist.barrier()
    free0, _ = torch.cuda.mem_get_info(device)
    rss0, _ = rss_gib()
    t0 = time.perf_counter()
    sender = ws.WeightSender(address, job, rank)
    sender.register(model)  # the FSDP2 module: its DTensor parameters, used in place
    t1 = time.perf_counter()
    sender.connect()
    t2 = time.perf_counter()
    free1, _ = torch.cuda.mem_get_info(device)
    rss1, peak1 = rss_gib()

    lookup = {**dict(dests.named_parameters()), **dict(dests.named_buffers())}
    pointers = [int(lookup[t.name].data_ptr()) for t in receiver.expected]
    pushes, metrics, checked, mismatched = [], [], 0, 0
    for version in range(1, args.versions + 1):
        if version > 1:
            with torch.no_grad():  # the optimizer step: every local shard changes in place
                for name, p in params.items():
                    p.to_local().mul_(1.0 + 1.0 / 64).add_(scale_of(name) / (8 * version))
        torch.cuda.synchronize()
        dist.barrier()
        start = time.perf_counter()
        metrics.append(sender.push(version))
        pushes.append(time.perf_counter() - start)
        receiver.wait_for_version(version, timeout=60)
        # The check: whole tensors gathered over NCCL for it alone, converted by the reference.
        with torch.no_grad():
            full = {name: p.full_tensor() for name, p in params.items()}
        torch.cuda.synchronize()
        bad = ws._core.compare_reference_cuda(
            layout, receiver.peer, pointers, local,
            sources={n: (int(t.data_ptr()), ws.torch_interop.core_dtype(t), list(t.shape))
                     for n, t in full.items()})
        del full
        wrong = {n: b for n, b in bad.items() if b}
        mismatched += sum(wrong.values())
        checked += sum(t.bytes for t in receiver.expected)
        if wrong:
            print(f"rank {rank} version {version}: mismatches {wrong}", file=sys.stderr, flush=True)

    row = {"rank": rank, "device": str(device), "register_s": t1 - t0, "connect_s": t2 - t1,
           "push_s": pushes, "metrics": metrics, "checked_bytes": checked,
           "mismatched_bytes": mismatched, "shard_bytes": shard_bytes,
           "slot_bytes": sender.slot_bytes, "gpu_bytes_taken_by_connect": free0 - free1,
           "host_rss_gib_before": rss0, "host_rss_gib_after": rss1, "host_peak_rss_gib": peak1,
           "sender_device": sender.device, "receiver_device": receiver.device}
    rows: list[Any] = [None] * world
    dist.all_gather_object(rows, row)
    ok = all(r["mismatched_bytes"] == 0 and r["checked_bytes"] > 0 for r in rows)
    if rank == 0:
        per_version = [max(r["push_s"][v] for r in rows) for v in range(args.versions)]
        summary = {
            "command": "torchrun --nproc-per-node {} {}".format(world, " ".join(sys.argv)),
            "model": args.model, "layers": args.layers, "trainer_ranks": world,
            "inference_ranks": world, "source_bytes": layout.source_bytes,
            "dest_bytes": layout.dest_bytes, "versions": args.versions,
            "verified": ok, "register_connect_s": max(r["register_s"] + r["connect_s"]
                                                      for r in rows),
            "push_s": per_version,
            "push_s_median_after_first": statistics.median(per_version[1:] or per_version),
            "wire_bytes": sum(r["metrics"][-1]["wire_bytes"] for r in rows), "ranks": rows}
        print(json.dumps({k: v for k, v in summary.items() if k != "ranks"}), flush=True)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(summary, f, indent=1)
    sender.close()
    receiver.close(timeout=30)
    dist.barrier()
    dist.destroy_process_group()
    if coordinator is not None:
        coordinator.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
