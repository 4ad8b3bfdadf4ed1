"""One rank of test_gather_batch.py: a real torch.distributed (gloo) process group, DTensor-like
pieces of three tensors split along dim 0, gathered twice through weightsync's GatherBatch after
in-place updates. Usage: gather_process.py RANK WORLD INIT_FILE. Prints "ok" or raises."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from weightsync.dtensor import gather_batches


class Shard0:
    dim = 0

    def is_shard(self) -> bool:
        return True

    def is_replicate(self) -> bool:
        return False

    def is_partial(self) -> bool:
        return False


class Mesh:
    def __init__(self, rank: int, world: int, group) -> None:
        self.rank, self.world, self.group = rank, world, group

    def get_coordinate(self) -> list[int]:
        return [self.rank]

    def size(self, dim: int) -> int:
        return self.world

    def get_group(self):
        return self.group


class DTensor:
    """The DTensor surface GatherBatch reads (torch 1.13 has no public DTensor)."""

    def __init__(self, local: torch.Tensor, shape: torch.Size, mesh: Mesh) -> None:
        self._local_tensor, self.shape, self.device_mesh = local, shape, mesh
        self.placements = (Shard0(),)

    def to_local(self) -> torch.Tensor:
        return self._local_tensor

    def full_tensor(self) -> torch.Tensor:
        raise AssertionError("an evenly split 1-D DTensor must go through the batch")


def main() -> int:
    rank, world, init = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    mesh = Mesh(rank, world, dist.group.WORLD)
    wholes = {"a": torch.randn(6, 5, generator=torch.Generator().manual_seed(1)).bfloat16(),
              "b": torch.randn(4, generator=torch.Generator().manual_seed(2)),
              "c": torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(3)).bfloat16()}
    items = [(k, DTensor(v.chunk(world)[rank].clone(), v.shape, mesh)) for k, v in wholes.items()]
    items.append(("odd", DTensor(torch.zeros(1), torch.Size([3]), mesh)))  # 3 rows over 2 ranks
    batches, others = gather_batches(items)
    assert others == ["odd"] and len(batches) == 1, (others, batches)
    pieces = {k: [c.clone() for c in v.chunk(world)] for k, v in wholes.items()}
    for _ in range(2):
        for _, dt in items[:3]:
            dt.to_local().add_(1)  # the optimizer step, in place: the batch reads it
        for chunks in pieces.values():
            for c in chunks:
                c.add_(1)
        out = batches[0].run()
        for k, chunks in pieces.items():
            assert torch.equal(out[k], torch.cat(chunks)), k
    dist.destroy_process_group()
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
