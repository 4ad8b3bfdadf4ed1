"""One trainer rank in its own process, driven by the pytest cases in this folder.

Usage: trainer_process.py '<json config>'. Config keys: coordinator, job, rank, versions,
seed, values ("random" | "synthetic"), sharding ("whole" | "mixed"), device ("cpu" or
"cuda:N": where the trainer holds its tensors, and where gathers return them), realloc_at (a
version before whose push one tensor is re-allocated, to test the identity check),
gather_to_cpu (gathers return CPU tensors on a CUDA rank: refused). Prints one JSON line:
{"ok": ..., "versions": [...], "metrics": [...], "device": ..., "error_type": ..., "error": ...}.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import torch

import weightsync as ws
from helpers import trainer_weights


class FakePlacement:
    """Shard(dim) or Replicate, as torch.distributed.tensor placements answer."""

    def __init__(self, dim: int | None) -> None:
        self.dim = dim

    def is_shard(self) -> bool:
        return self.dim is not None

    def is_replicate(self) -> bool:
        return self.dim is None

    def is_partial(self) -> bool:
        return False


class FakeMesh:
    def __init__(self, coordinate: list[int], sizes: list[int]) -> None:
        self._coordinate, self._sizes = coordinate, sizes

    def get_coordinate(self) -> list[int]:
        return self._coordinate

    def size(self, dim: int) -> int:
        return self._sizes[dim]


class FakeDTensor:
    """The DTensor surface weightsync uses (torch 1.13 has no DTensor): to_local(), placements,
    device_mesh, the global shape, and full_tensor() (here rebuilt from the version's weights,
    where FSDP would all-gather)."""

    def __init__(self, local: torch.Tensor, placements: tuple, mesh: FakeMesh,
                 shape: tuple[int, ...], full: Any) -> None:
        self._local, self.placements, self.device_mesh = local, placements, mesh
        self.shape, self._full = torch.Size(shape), full

    def to_local(self) -> torch.Tensor:
        return self._local

    def full_tensor(self) -> torch.Tensor:
        return self._full()


def piece(full: torch.Tensor, start: int, stop: int, device: str) -> torch.Tensor:
    # A piece with its own storage, as FSDP2 allocates shards (a slice view would be refused).
    return full[start:stop].clone().to(device)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    rank, seed = cfg["rank"], cfg.get("seed", 7)
    device = cfg.get("device", "cpu")
    if device != "cpu":
        torch.cuda.set_device(torch.device(device))
    sender = ws.WeightSender(cfg["coordinator"], cfg["job"], rank)
    layout, mesh = sender.layout, sender.spec.mesh
    if cfg.get("values") == "synthetic":
        def generate(v: int) -> dict[str, torch.Tensor]:
            return ws.synthetic_sources(layout, sender.spec.seed, v)
    else:
        def generate(v: int) -> dict[str, torch.Tensor]:
            return trainer_weights(layout, seed, v)
    gathered_on = "cpu" if cfg.get("gather_to_cpu") else device

    @functools.lru_cache(maxsize=2)
    def make(v: int) -> dict[str, torch.Tensor]:
        return {n: t.to(gathered_on) for n, t in generate(v).items()}

    current = {"version": 1}
    full = make(1)
    held: dict[str, torch.Tensor] = {}  # name -> the tensor the optimizer updates in place
    registered: dict[str, Any] = {}
    f = rank % mesh.fsdp
    for i, s in enumerate(layout.sources):
        start, stop = sender.owned(s.name)
        whole = lambda name=s.name: make(current["version"])[name]  # noqa: E731
        if cfg.get("sharding", "whole") == "whole" or (start, stop) == (0, s.shape[0]):
            held[s.name] = full[s.name].clone().to(device)
            registered[s.name] = held[s.name]
        elif s.expert:
            # FSDP2 + EP: experts sharded over the EP mesh dim, then over the rest (torchtitan).
            held[s.name] = piece(full[s.name], start, stop, device)
            registered[s.name] = FakeDTensor(
                held[s.name], (FakePlacement(0), FakePlacement(0)),
                FakeMesh([f % mesh.ep, f // mesh.ep], [mesh.ep, mesh.fsdp // mesh.ep]),
                tuple(s.shape), whole)
        elif i % 2 == 0:
            held[s.name] = piece(full[s.name], start, stop, device)
            registered[s.name] = FakeDTensor(held[s.name], (FakePlacement(0),),
                                             FakeMesh([f], [mesh.fsdp]), tuple(s.shape), whole)
        else:
            held[s.name] = piece(full[s.name], start, stop, device)
            registered[s.name] = ws.Shard(held[s.name], index=f, count=mesh.fsdp, gather=whole)
    result: dict[str, Any] = {"ok": True, "versions": [], "metrics": []}
    try:
        sender.register(registered)
        result["device"] = sender.device
        for version in range(1, cfg["versions"] + 1):
            if version > 1:
                # The optimizer step: new values, written in place.
                current["version"] = version
                new = make(version)
                for name, tensor in held.items():
                    start, stop = sender.owned(name)
                    src = new[name] if tensor.shape == new[name].shape else new[name][start:stop]
                    tensor.copy_(src)
            if version == cfg.get("realloc_at"):
                name = layout.sources[0].name
                held[name].data = held[name].data.clone()  # the model re-allocated a parameter
            metrics = sender.push(version)
            result["versions"].append(version)
            result["metrics"].append(metrics)
    except ws.WeightsyncError as e:
        result.update(ok=False, error_type=type(e).__name__, error=str(e))
    finally:
        sender.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
