"""One trainer rank that sends weights through vLLM's trainer API with the weightsync backend.

Usage: vllm_trainer_process.py '<json config>'. Config keys: coordinator, job, rank, ranks,
versions, seed, model, job_options, publish (default true: rank 0 publishes the job), source ("module": vLLM's ModuleSource over a module of
whole tensors; "sharded": a WeightSource whose ParamMeta describe FSDP 4 = 2 shards x EP 2),
dist (tcp://host:port of a gloo group, for ranks > 1), rpc ([host, port] of the test's
stand-in for vLLM's control plane; rank 0 only). Prints one JSON line: {"ok": ..., "versions":
[...], "metrics": [...], "error_type": ..., "error": ...}.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from multiprocessing.connection import Client
from typing import Any, Iterator

import torch
from vllm.distributed.weight_transfer import (
    ModuleSource,
    ParamMeta,
    Shard,
    WeightSource,
    WeightTransferTrainerFactory,
)

import weightsync as ws
from helpers import nested_module, trainer_weights

AUTHKEY = b"weightsync-vllm-test"


class RpcClient:
    """vLLM's VLLMWeightSyncClient protocol, over a connection to the test process (which
    plays vLLM's engine: it runs each call on every worker, as collective_rpc does)."""

    def __init__(self, address: list) -> None:
        self._conn = Client(tuple(address), authkey=AUTHKEY)

    def _call(self, method: str, *args: Any) -> None:
        self._conn.send((method, args))
        status, detail = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"vLLM {method} failed: {detail}")

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self._call("init_weight_transfer_engine", init_info)

    def start_weight_update(self) -> None:
        self._call("start_weight_update")

    def update_weights(self, update_info: dict) -> None:
        self._call("update_weights", update_info)

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._call("finish_weight_update", weight_version)


class NoClient:
    """What non-sender ranks get: any call is a test failure (only rank 0 drives vLLM)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a non-sender trainer rank called the vLLM client ({name})")


def chunk(t: torch.Tensor, parts: int, index: int) -> torch.Tensor:
    return torch.chunk(t, parts)[index]


class ShardedSource(WeightSource):
    """FSDP 4 = 2 shards x EP 2 (as torchtitan lays it out): dense tensors split in 4 along
    dim 0; experts split over the EP axis, then over the shard axis. ParamMeta says so."""

    def __init__(self, layout: ws.Layout, rank: int, full: dict[str, torch.Tensor]) -> None:
        self.layout, self.rank = layout, rank
        self.held = {s.name: self.local(s, full[s.name]).clone() for s in layout.sources}

    def local(self, source: Any, full: torch.Tensor) -> torch.Tensor:
        if source.expert:
            return chunk(chunk(full, 2, self.rank % 2), 2, self.rank // 2)
        return chunk(full, 4, self.rank)

    @cached_property
    def metadata(self) -> list[ParamMeta]:
        metas = []
        for s in self.layout.sources:
            dtype = torch.bfloat16 if s.dtype == "bf16" else torch.float32
            if s.expert:  # mesh (ep, shard): rank f sits at (f % 2, f // 2)
                metas.append(ParamMeta(s.name, dtype, tuple(s.shape), owners=(0, 2, 1, 3),
                                       mesh_shape=(2, 2), placements=(Shard(0), Shard(0))))
            else:
                metas.append(ParamMeta(s.name, dtype, tuple(s.shape), owners=(0, 1, 2, 3),
                                       placements=(Shard(0),)))
        return metas

    def iter_local(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from self.held.items()

    def step(self, full: dict[str, torch.Tensor]) -> None:
        for s in self.layout.sources:
            self.held[s.name].copy_(self.local(s, full[s.name]))


class WholeModule:
    """A trainer model with whole tensors, read through vLLM's own ModuleSource."""

    def __init__(self, full: dict[str, torch.Tensor]) -> None:
        self.module = nested_module({n: t.clone() for n, t in full.items()})
        self.source = ModuleSource(self.module)

    def step(self, full: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, param in self.module.named_parameters():
                param.copy_(full[name])


def main() -> int:
    cfg = json.loads(sys.argv[1])
    # No vLLM plugin loader here, as in most trainers: importing the init info registers.
    from weightsync.vllm_trainer import WeightSyncTrainerInitInfo

    rank, ranks, seed = cfg["rank"], cfg.get("ranks", 1), cfg.get("seed", 7)
    if ranks > 1:
        torch.distributed.init_process_group("gloo", init_method=cfg["dist"], rank=rank,
                                             world_size=ranks)
    layout = ws.resolve_layout(cfg["model"])
    full = trainer_weights(layout, seed, 1)
    holder: Any = (ShardedSource(layout, rank, full) if cfg["source"] == "sharded"
                   else WholeModule(full))
    source = holder if cfg["source"] == "sharded" else holder.source
    client = RpcClient(cfg["rpc"]) if rank == 0 else NoClient()
    result: dict[str, Any] = {"ok": True, "versions": [], "metrics": []}
    engine = None
    try:
        publish = cfg.get("publish", True)  # else the job was published by the test
        info = WeightSyncTrainerInitInfo(cfg["coordinator"], cfg["job"], rank=rank,
                                         model=cfg["model"] if publish else None,
                                         job_options=cfg["job_options"] if publish else {},
                                         after_update=cfg.get("after_update"))
        engine = WeightTransferTrainerFactory.trainer_init(info, client=client, source=source)
        result["engine"] = type(engine).__name__
        for version in range(1, cfg["versions"] + 1):
            if version > 1:
                holder.step(trainer_weights(layout, seed, version))  # the optimizer step
            engine.send_weights()
            result["versions"].append(engine.version)
            result["metrics"].append(engine.last_metrics)
    except Exception as e:  # noqa: BLE001 - reported to the test
        result.update(ok=False, error_type=type(e).__name__, error=str(e))
    finally:
        if engine is not None:
            engine.shutdown()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
