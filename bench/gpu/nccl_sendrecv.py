#!/usr/bin/env python3
"""NCCL send/recv throughput between two GPUs of one host, on bench_push_gpu's byte count.

Two processes (torch.multiprocessing spawn), torch.distributed with the NCCL backend: rank 0 on
GPU 0 sends --total bytes in --piece pieces (one batch_isend_irecv group per pass) to rank 1 on
GPU 1, which verifies what it received. Each pass is timed on both ranks with the host clock from
a barrier to local completion (torch.cuda.synchronize); the pass time is the slower rank's. One
warm-up pass first. NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as on the lab hosts.

NCCL cannot put two ranks on one GPU, so with a single GPU there is nothing to measure: the script
says so, writes {"status": "skipped", ...} and exits 0.

usage: nccl_sendrecv.py [--total BYTES] [--piece BYTES] [--passes N] [--json-out PATH]
"""

import argparse
import json
import os
import shlex
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nccl_version():
    v = torch.cuda.nccl.version()
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def one_pass(rank, buffer, pieces):
    ops = []
    for start, length in pieces:
        view = buffer[start:start + length]
        ops.append(dist.P2POp(dist.isend if rank == 0 else dist.irecv, view, 1 - rank))
    dist.barrier()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for work in dist.batch_isend_irecv(ops):
        work.wait()
    torch.cuda.synchronize()
    elapsed = torch.tensor([time.perf_counter() - began], dtype=torch.float64, device="cuda")
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return elapsed.item()


def worker(rank, args, port, results):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2, device_id=torch.device("cuda", rank))
    generator = torch.Generator(device="cuda").manual_seed(1234)
    expected = torch.randint(0, 256, (args.total,), dtype=torch.uint8, device="cuda",
                             generator=generator)
    buffer = expected.clone() if rank == 0 else torch.zeros_like(expected)
    pieces = [(s, min(args.piece, args.total - s)) for s in range(0, args.total, args.piece)]
    one_pass(rank, buffer, pieces)  # warm-up: communicator setup, P2P connections
    seconds = [one_pass(rank, buffer, pieces) for _ in range(args.passes)]
    verified = bool(torch.equal(buffer, expected))
    flag = torch.tensor([1 if verified else 0], device="cuda")
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    if rank == 0:
        results.put({"seconds": seconds, "verified": bool(flag.item())})
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total", type=int, default=8 << 30, help="bytes per pass")
    parser.add_argument("--piece", type=int, default=64 << 20, help="bytes per send")
    parser.add_argument("--passes", type=int, default=5, help="timed passes")
    parser.add_argument("--json-out", default="", help="write the results as JSON")
    args = parser.parse_args()
    # Multicast (NVLS) must stay off on these hosts; the spawned ranks inherit this.
    os.environ["NCCL_NVLS_ENABLE"] = "0"
    os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
    os.environ["NVSHMEM_DISABLE_NVLS"] = "1"

    count = torch.cuda.device_count()
    out = {
        "bench": "nccl_sendrecv",
        "command": shlex.join([sys.executable] + sys.argv),
        "devices": [{"ordinal": d, "name": torch.cuda.get_device_name(d)} for d in range(count)],
        "torch_version": torch.__version__,
        "nccl_version": nccl_version() if count else None,
        "total_bytes": args.total,
        "piece_bytes": args.piece,
        "passes": args.passes,
        "timing": "host clock, barrier to completion on both ranks (max), after one warm-up",
    }
    if count < 2:
        out["status"] = "skipped"
        out["reason"] = f"{count} GPU(s): NCCL cannot run two ranks on one GPU"
        print(f"nccl_sendrecv: {out['reason']}; nothing to measure")
    else:
        results = mp.get_context("spawn").SimpleQueue()
        mp.spawn(worker, args=(args, free_port(), results), nprocs=2, join=True)
        r = results.get()
        rates = [args.total / s / 1e9 for s in r["seconds"]]
        out.update({"status": "ok", "src_device": 0, "dst_device": 1,
                    "best_gbps": max(rates), "avg_gbps": sum(rates) / len(rates),
                    "pass_gbps": rates, "verified": r["verified"]})
        print(f"nccl_sendrecv: {args.total / (1 << 30):.2f} GiB in {args.piece >> 20} MiB pieces, "
              f"GPU0 ({out['devices'][0]['name']}) -> GPU1, {args.passes} passes")
        print(f"{'path':<40} {'best GB/s':>9} {'avg GB/s':>9} {'verified':>8}")
        print(f"{'NCCL send/recv (torch), 2 processes':<40} {out['best_gbps']:>9.1f} "
              f"{out['avg_gbps']:>9.1f} {'yes' if r['verified'] else 'NO':>8}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json_out}")
    return 0 if out["status"] == "skipped" or out["verified"] else 3


if __name__ == "__main__":
    sys.exit(main())
