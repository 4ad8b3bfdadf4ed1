#!/usr/bin/env python3
"""NCCL baseline for the multi-GPU push: 2N processes, rank i (GPU i) sends --bytes to rank i+N
(GPU i+N) concurrently, in --piece pieces, through torch.distributed's NCCL send/recv. Prints the
aggregate and per-GPU GB/s of the slowest pass-time and writes JSON with the command."""
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


def worker(rank, world, args, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NCCL_NVLS_ENABLE="0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    half = world // 2
    peer = rank + half if rank < half else rank - half
    buf = torch.full((args.bytes,), rank % 251, dtype=torch.uint8, device="cuda")
    pieces = list(buf.split(args.piece))

    def one():
        dist.barrier()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        op = dist.isend if rank < half else dist.irecv
        reqs = dist.batch_isend_irecv([dist.P2POp(op, p, peer) for p in pieces])
        for r in reqs:
            r.wait()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    one()
    times = [one() for _ in range(args.passes)]
    queue.put((rank, times))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--bytes", type=int, default=8 << 30, help="bytes per sending GPU")
    ap.add_argument("--piece", type=int, default=64 << 20)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()
    world = 2 * args.pairs
    if torch.cuda.device_count() < world:
        print(f"nccl_pairs: needs {world} GPUs, has {torch.cuda.device_count()}")
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, world, args, port, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
    per_pass = [max(results[r][i] for r in results) for i in range(args.passes)]
    best = min(per_pass)
    agg = args.pairs * args.bytes / best / 1e9
    out = {"bench": "nccl_pairs", "command": shlex.join([sys.executable] + sys.argv),
           "pairs": args.pairs, "bytes_per_sender": args.bytes, "best_seconds": best,
           "aggregate_gbps": agg, "per_gpu_gbps": agg / args.pairs}
    print(f"NCCL send/recv, {args.pairs} pairs: aggregate {agg:.1f} GB/s, per GPU {agg / args.pairs:.1f} GB/s")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
