"""vLLM's ``ParamMeta`` (owners, mesh_shape, placements) mapped onto weightsync's trainer mesh.

vLLM's trainer API describes how a parameter is spread over trainer ranks: ``owners`` (global
ranks, in mesh order), ``mesh_shape`` (row-major over the owners) and ``placements`` (one
``Replicate`` / ``Shard(dim)`` per mesh axis, torch.chunk semantics, outer axis first). This
module derives weightsync's :class:`TrainerMesh` (HSDP replicas x FSDP, with EP for experts)
from that, so the mesh is described once, and presents each rank's piece to
:class:`WeightSender` through the DTensor surface it already understands
(:mod:`weightsync.dtensor`). Duck-typed: it reads ParamMeta's attributes and imports no vLLM.

Refused with a clear error: sharding along a dim other than 0, a parameter some trainer rank
does not own (weightsync needs every rank to hold its part of every tensor), names, dtypes or
shapes that differ from the layout, and placements no weightsync mesh reproduces.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from . import _core
from .dtensor import _placement_kind
from .errors import InvalidArgumentError, MismatchError, UnsupportedError
from .torch_interop import torch_module

_DTYPES = {"bfloat16": "bf16", "float32": "fp32", "uint8": "u8"}


def _first(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def coordinate(meta: Any, rank: int) -> Optional[list[int]]:
    """The rank's coordinate in the parameter's mesh ([] when owned by every rank, None when
    the rank is not an owner)."""
    if meta.owners is None:
        return []
    owners = list(meta.owners)
    if rank not in owners:
        return None
    index, coord = owners.index(rank), []
    for size in reversed(tuple(meta.mesh_shape)):
        coord.append(index % size)
        index //= size
    return coord[::-1]


def piece(meta: Any, rank: int) -> Optional[tuple[int, int]]:
    """[start, stop) along dim 0 that `rank` holds of the parameter (None: it holds nothing)."""
    coord = coordinate(meta, rank)
    if coord is None:
        return None
    rows = int(tuple(meta.shape)[0])
    start, size = 0, rows
    for axis, p in enumerate(meta.placements or ()):
        kind, dim = _placement_kind(p)
        if kind == "replicate":
            continue
        if kind != "shard":
            raise UnsupportedError(f"'{meta.name}': placement {p!r} holds no weights to send")
        if dim != 0:
            raise UnsupportedError(
                f"'{meta.name}': its ParamMeta shards dim {dim}; weightsync maps only dim-0 "
                "shards (FSDP rows, EP experts) onto its trainer mesh")
        n = int(tuple(meta.mesh_shape)[axis])
        chunk = -(-size // n)
        begin = min(size, coord[axis] * chunk)
        start += begin
        size = max(0, min(size - begin, chunk))
    return start, start + size


def is_sharded(meta: Any) -> bool:
    return any(_placement_kind(p)[0] == "shard" for p in (meta.placements or ()))


def check_names(layout: Any, metas: Sequence[Any]) -> None:
    """Every layout source described once, with the layout's dtype and shape."""
    names = [m.name for m in metas]
    known = {s.name for s in layout.sources}
    missing = [s.name for s in layout.sources if s.name not in set(names)]
    unknown = [n for n in names if n not in known]
    if missing or unknown:
        raise MismatchError(
            f"the WeightSource does not match layout '{layout.name}': {len(missing)} layout "
            f"tensors are missing from its metadata{f' (first: {_first(missing)})' if missing else ''}"
            f"; {len(unknown)} of its parameters are not in the layout"
            f"{f' (first: {_first(unknown)})' if unknown else ''}")
    bad = []
    for m in metas:
        s = layout.source(m.name)
        dtype = _DTYPES.get(str(m.dtype).replace("torch.", ""), str(m.dtype))
        if tuple(m.shape) != tuple(s.shape) or dtype != s.dtype:
            bad.append(f"{m.name} is {list(m.shape)} {dtype}, the layout's {list(s.shape)} "
                       f"{s.dtype}")
    if bad:
        raise MismatchError(f"the WeightSource's metadata differs from layout '{layout.name}' in "
                            f"{len(bad)} parameters: {'; '.join(bad[:4])}")


def _owned(layout: Any, mesh: Any, name: str, rank: int) -> tuple[int, int]:
    g0, groups, r0, rows = _core.trainer_shard_box(layout, name, mesh, rank)
    return (g0, g0 + groups) if layout.source(name).expert else (r0, r0 + rows)


def mesh_fit(layout: Any, metas: Sequence[Any], mesh: Any, ranks: int) -> tuple[bool, str]:
    """(exact, problem): problem is "" when every rank's piece covers what `mesh` makes it own;
    exact: every sharded piece is exactly that."""
    exact = True
    for m in metas:
        for rank in range(ranks):
            held = piece(m, rank)
            if held is None:
                return False, (f"'{m.name}' is owned by trainer ranks {tuple(m.owners)} only; "
                               f"weightsync needs every trainer rank (0..{ranks - 1}) to hold "
                               "its part of every tensor (pipeline stages are not supported)")
            try:
                want = _owned(layout, mesh, m.name, rank)
            except _core.WeightsyncError as e:
                return False, str(e)
            if not (held[0] <= want[0] and want[1] <= held[1]):
                return False, (f"'{m.name}': trainer rank {rank} holds [{held[0]}, {held[1]}) "
                               f"along dim 0, the mesh (replicas {mesh.replicas}, fsdp "
                               f"{mesh.fsdp}, ep {mesh.ep}) makes it own [{want[0]}, {want[1]})")
            exact = exact and (held == want or not is_sharded(m))
    return exact, ""


def derive_mesh(layout: Any, metas: Sequence[Any], ranks: int) -> Any:
    """The weightsync trainer mesh that reproduces every parameter's placements on `ranks`
    trainer ranks (replica-major HSDP, EP inside the FSDP group)."""
    check_ranks(metas, ranks)
    first_problem, covering = "", None
    for replicas in _divisors(ranks):
        fsdp = ranks // replicas
        for ep in _divisors(fsdp):
            mesh = _core.TrainerMesh(replicas=replicas, fsdp=fsdp, ep=ep)
            exact, problem = mesh_fit(layout, metas, mesh, ranks)
            if not problem and exact:
                return mesh
            if not problem and covering is None:
                covering = mesh
            first_problem = first_problem or problem
    if covering is not None:
        return covering
    raise MismatchError(f"no weightsync trainer mesh of {ranks} ranks matches the WeightSource's "
                        f"ParamMeta placements: {first_problem}")


def check_mesh(layout: Any, metas: Sequence[Any], mesh: Any) -> None:
    """Refuses placements that disagree with a published job's trainer mesh."""
    ranks = mesh.replicas * mesh.fsdp
    check_ranks(metas, ranks)
    _, problem = mesh_fit(layout, metas, mesh, ranks)
    if problem:
        raise MismatchError(f"the WeightSource's ParamMeta placements disagree with the job's "
                            f"trainer mesh: {problem}")


def check_ranks(metas: Iterable[Any], ranks: int) -> None:
    for m in metas:
        if m.owners is not None and max(m.owners) >= ranks:
            raise InvalidArgumentError(
                f"'{m.name}' is owned by trainer rank {max(m.owners)}, but the trainer has "
                f"{ranks} ranks (set trainer_ranks in the init info)")


def trainer_ranks(metas: Sequence[Any], given: Optional[int]) -> int:
    """The number of trainer ranks: given, else torch.distributed's world, else the owners."""
    if given is not None:
        return given
    dist = getattr(torch_module(), "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    owners = [max(m.owners) for m in metas if m.owners is not None]
    return max(owners) + 1 if owners else 1


class _Mesh:
    def __init__(self, coord: list[int], sizes: tuple[int, ...]) -> None:
        self._coord, self._sizes = coord, sizes

    def get_coordinate(self) -> list[int]:
        return self._coord

    def size(self, dim: int) -> int:
        return self._sizes[dim]


class MetaPiece:
    """One rank's piece of a parameter, through the DTensor surface WeightSender reads
    (to_local, placements, device_mesh, shape, full_tensor). ``local`` is what the source
    yielded this round; WeightSender checks at every push that it is the registered memory."""

    def __init__(self, meta: Any, rank: int, ranks: int, local: Any) -> None:
        self.meta, self.rank, self.ranks, self.local = meta, rank, ranks, local
        self.placements = tuple(meta.placements or ())
        coord = coordinate(meta, rank) or []
        self.device_mesh = _Mesh(coord if self.placements else [],
                                 tuple(meta.mesh_shape or ()) if self.placements else ())
        self.shape = torch_module().Size(tuple(meta.shape))

    def to_local(self) -> Any:
        return self.local

    def full_tensor(self) -> Any:
        """The whole tensor: an all-gather of every rank's piece over torch.distributed's
        default group (its ranks must be the trainer ranks)."""
        torch = torch_module()
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()
                and dist.get_world_size() == self.ranks):
            raise UnsupportedError(
                f"'{self.meta.name}' is sharded and the plan needs it whole on some rank: "
                f"weightsync gathers it over torch.distributed's default group, which must be "
                f"initialized with the {self.ranks} trainer ranks")
        ranges = [piece(self.meta, r) for r in range(self.ranks)]
        longest = max(stop - start for start, stop in ranges)
        rest = tuple(int(d) for d in self.shape[1:])
        width = self.local.element_size()
        for d in rest:
            width *= d
        mine = self.local.detach().contiguous().view(torch.uint8).reshape(-1)
        mine = mine.reshape(int(self.local.shape[0]), width)
        padded = torch.zeros((longest, width), dtype=torch.uint8, device=mine.device)
        padded[:mine.shape[0]] = mine
        parts = [torch.empty_like(padded) for _ in range(self.ranks)]
        dist.all_gather(parts, padded)
        whole = torch.empty((int(self.shape[0]), width), dtype=torch.uint8, device=mine.device)
        for (start, stop), part in zip(ranges, parts):
            whole[start:stop] = part[:stop - start]
        return whole.view(self.local.dtype).reshape((int(self.shape[0]),) + rest)


def pieces(metas: Sequence[Any], rank: int, ranks: int,
           tensors: Iterable[tuple[str, Any]]) -> dict[str, MetaPiece]:
    """MetaPiece per parameter from one pass of the source (name -> tensor of this rank)."""
    by_name = {m.name: m for m in metas}
    out: dict[str, MetaPiece] = {}
    for name, tensor in tensors:
        meta = by_name.get(name)
        if meta is None:
            raise MismatchError(f"the WeightSource yielded '{name}', which its metadata does "
                                "not declare")
        out[name] = MetaPiece(meta, rank, ranks, tensor)
    missing = [m.name for m in metas if m.name not in out]
    if missing:
        raise MismatchError(f"trainer rank {rank}: the WeightSource yielded no tensor for "
                            f"{len(missing)} parameters (first: {_first(missing)})")
    return out


def update_locals(current: dict[str, MetaPiece], tensors: Iterable[tuple[str, Any]]) -> None:
    """Points each piece at what the source yielded this round."""
    for name, tensor in tensors:
        if name in current:
            current[name].local = tensor

