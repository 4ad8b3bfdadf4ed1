"""Sharded trainer tensors: FSDP2 ``DTensor`` shards and explicit shards.

A trainer rank registers what it holds of each source tensor. Three forms:

* a plain tensor of the global shape (the rank holds the whole tensor);
* a ``DTensor`` (FSDP2, optionally with expert parallelism): recognised by
  duck typing -- ``.to_local()``, ``.placements`` (``Shard(0)`` / ``Replicate``
  per mesh dim), ``.device_mesh`` (``get_coordinate()`` and ``size(dim)``) and
  the global ``.shape``; gathered with ``.full_tensor()`` when the plan needs
  the whole tensor on a rank;
* :class:`Shard`: an explicit local piece, for trainers without DTensor (and
  torch versions that lack it).

Only the first dim may be sharded (rows, or experts for stacked expert
tensors), as FSDP2 and EP do. The piece a rank registers must cover what the
job's trainer mesh says it owns; the core checks that and names the tensor
when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import InvalidArgumentError, UnsupportedError
from .torch_interop import is_tensor


@dataclass
class Shard:
    """An explicit piece of a trainer tensor, split along dim 0.

    Give either ``index`` and ``count`` (torch.chunk semantics: piece ``index``
    of ``count``, ``ceil(n / count)`` long, the last pieces shorter), or the
    global ``offset`` of the piece's first row (or expert). ``gather`` returns
    the whole tensor; it is called on every trainer rank, in the same order,
    for every tensor the plan gathers (a collective such as all_gather fits),
    and is required only for those tensors.
    """

    local: Any
    index: Optional[int] = None
    count: Optional[int] = None
    offset: Optional[int] = None
    gather: Optional[Callable[[], Any]] = None

    def global_offset(self, name: str, global_rows: int) -> int:
        """The global index of the piece's first row along dim 0."""
        if self.offset is not None:
            if self.index is not None or self.count is not None:
                raise InvalidArgumentError(f"'{name}': give either offset or index/count, not both")
            return int(self.offset)
        if self.index is None or self.count is None or self.count < 1:
            raise InvalidArgumentError(f"'{name}': a Shard needs index and count (or offset)")
        if not 0 <= self.index < self.count:
            raise InvalidArgumentError(
                f"'{name}': shard index {self.index} outside 0..{self.count - 1}")
        chunk = -(-global_rows // self.count)
        return min(global_rows, self.index * chunk)


def is_dtensor(obj: Any) -> bool:
    """Whether obj looks like a torch DTensor (duck typing: works without torch.distributed)."""
    return (not isinstance(obj, Shard) and hasattr(obj, "to_local") and hasattr(obj, "placements")
            and hasattr(obj, "device_mesh"))


def _placement_kind(p: Any) -> tuple[str, Optional[int]]:
    """("shard", dim), ("replicate", None) or ("partial", None) for a placement object."""
    if hasattr(p, "is_shard") and callable(p.is_shard) and p.is_shard():
        return "shard", int(p.dim)
    if hasattr(p, "is_replicate") and callable(p.is_replicate) and p.is_replicate():
        return "replicate", None
    if hasattr(p, "is_partial") and callable(p.is_partial) and p.is_partial():
        return "partial", None
    kind = type(p).__name__.lower()
    if kind.startswith("shard") and hasattr(p, "dim"):
        return "shard", int(p.dim)
    if kind.startswith("replicate"):
        return "replicate", None
    if "partial" in kind:
        return "partial", None
    raise UnsupportedError(f"unknown DTensor placement {p!r}")


def _mesh_size(mesh: Any, dim: int) -> int:
    if hasattr(mesh, "size") and callable(mesh.size):
        return int(mesh.size(dim))
    return int(tuple(mesh.shape)[dim])


def dtensor_piece(name: str, dt: Any) -> tuple[Any, int]:
    """(local tensor, global offset along dim 0) of a DTensor shard.

    Follows DTensor's own rule (torch.chunk per mesh dim, outer mesh dims
    first), so FSDP2's dp_shard and EP shardings of dim 0 are both handled.
    """
    local = local_of(dt)
    mesh = dt.device_mesh
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        raise InvalidArgumentError(f"'{name}': this rank is not part of the DTensor's device mesh")
    rows = int(tuple(dt.shape)[0])
    offset, size = 0, rows
    for mesh_dim, placement in enumerate(dt.placements):
        kind, dim = _placement_kind(placement)
        if kind == "replicate":
            continue
        if kind == "partial":
            raise UnsupportedError(f"'{name}': a Partial DTensor holds no weights to send; "
                                   "reduce it first")
        if dim != 0:
            raise UnsupportedError(f"'{name}': sharded along dim {dim}; weightsync supports dim 0 "
                                   "(FSDP rows, EP experts)")
        n = _mesh_size(mesh, mesh_dim)
        chunk = -(-size // n)
        start = min(size, int(coordinate[mesh_dim]) * chunk)
        offset += start
        size = max(0, min(size - start, chunk))
    if not is_tensor(local) or int(local.shape[0]) != size:
        raise InvalidArgumentError(
            f"'{name}': the DTensor's local tensor has shape {getattr(local, 'shape', None)}, "
            f"its placements give {size} rows")
    return local, offset


def full_tensor(dt: Any) -> Any:
    """The whole tensor of a DTensor (a collective over its mesh)."""
    if hasattr(dt, "full_tensor"):
        return dt.full_tensor()
    raise UnsupportedError("this DTensor has no full_tensor(); register a Shard with gather=")


def local_of(dt: Any) -> Any:
    """A DTensor's local tensor without an autograd op (to_local() costs tens of microseconds)."""
    local = getattr(dt, "_local_tensor", None)
    return local if is_tensor(local) else dt.to_local()


def even_fsdp_group(dt: Any) -> Any:
    """The process group of a DTensor split evenly along dim 0 over a 1-D mesh (FSDP2's plain
    case), or None: then its whole tensor is exactly the all-gather of the equal local pieces.
    Decided from global facts only (placements, mesh, global shape), so every rank agrees."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed
        return None
    mesh = getattr(dt, "device_mesh", None)
    placements = tuple(getattr(dt, "placements", ()))
    if (mesh is None or not hasattr(mesh, "get_group") or len(placements) != 1
            or not dist.is_available() or not dist.is_initialized()
            or _placement_kind(placements[0]) != ("shard", 0)
            or int(dt.shape[0]) % _mesh_size(mesh, 0) != 0):
        return None
    return mesh.get_group()


class GatherBatch:
    """The whole tensors of evenly split 1-D FSDP DTensors of one process group, through
    buffers allocated once: one copy kernel packs the local pieces into a send buffer, one
    all_gather_into_tensor (NCCL on GPUs) moves them, one copy kernel unpacks the pieces into
    the whole tensors, which keep their memory from push to push. A collective: every rank
    builds it from the same items in the same order and runs it at the same points."""

    def __init__(self, group: Any, items: list[tuple[str, Any]]) -> None:
        import torch
        import torch.distributed as dist
        self.group = group
        world = dist.get_world_size(group)
        pieces = [local_of(dt) for _, dt in items]
        device = pieces[0].device
        sizes = [int(p.numel()) * p.element_size() for p in pieces]
        offsets, total = [], 0
        for size in sizes:
            offsets.append(total)
            total += -(-size // 256) * 256  # each piece 256-byte aligned
        self.send = torch.empty(total, dtype=torch.uint8, device=device)
        self.recv = torch.empty(world * total, dtype=torch.uint8, device=device)
        self.whole = {name: torch.empty((int(dt.shape[0]), *p.shape[1:]), dtype=p.dtype,
                                        device=device) for (name, dt), p in zip(items, pieces)}
        # Byte views, computed once: the pieces are the registered local tensors, which push()
        # checks are still the model's memory before every gather.
        self._pack = ([self.send[o:o + n] for o, n in zip(offsets, sizes)],
                      [p.detach().reshape(-1).view(torch.uint8) for p in pieces])
        dst, src = [], []
        for (name, _), o, n in zip(items, offsets, sizes):
            whole = self.whole[name].reshape(-1).view(torch.uint8)
            for k in range(world):
                dst.append(whole[k * n:(k + 1) * n])
                src.append(self.recv[k * total + o:k * total + o + n])
        self._unpack = (dst, src)
        # NCCL gathers into one tensor; gloo (CPU trainers) into a list of its rank slices.
        self._slices = None if device.type == "cuda" else list(self.recv.chunk(world))

    def run(self) -> dict[str, Any]:
        import torch.distributed as dist
        _copy_all(*self._pack)
        if self._slices is None:
            dist.all_gather_into_tensor(self.recv, self.send, group=self.group)
        else:
            dist.all_gather(self._slices, self.send, group=self.group)
        _copy_all(*self._unpack)
        return self.whole


def _copy_all(dst: list[Any], src: list[Any]) -> None:
    import torch
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(dst, src)
    else:  # pragma: no cover - torch < 2.1
        for d, s in zip(dst, src):
            d.copy_(s)


def gather_batches(items: list[tuple[str, Any]]) -> tuple[list[GatherBatch], list[str]]:
    """GatherBatches (one per process group) for the DTensors that have one, and the names
    of the others, which need full_tensor()."""
    groups: dict[int, tuple[Any, list[tuple[str, Any]]]] = {}
    others = []
    for name, dt in items:
        group = even_fsdp_group(dt)
        if group is None:
            others.append(name)
        else:
            groups.setdefault(id(group), (group, []))[1].append((name, dt))
    return [GatherBatch(g, members) for g, members in groups.values()], others
