"""Trainer side: push a model's weights, as the trainer holds them, into the inference fleet.

::

    sender = weightsync.WeightSender("10.0.0.1:29600", job="run-7", rank=dist.get_rank())
    sender.register(model)            # plain tensors, FSDP2 DTensors or weightsync.Shard
    for step in range(1, steps + 1):
        train_step()                  # the optimizer updates the registered tensors in place
        sender.push(step)             # converts, FP8-quantizes and writes into every engine
    sender.close()

The C++ engine reads the registered tensors in place at every push (no copy
is taken at registration), converts them into its slot buffers and writes
those into the inference ranks' registered memory with one-sided writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _core
from .dtensor import Shard, dtensor_piece, full_tensor, is_dtensor
from .errors import InvalidArgumentError, WeightsyncError
from .torch_interop import TensorRef, check_tensor, check_unchanged, is_tensor, torch_module

NamedTensors = Union[Mapping[str, Any], Iterable[tuple[str, Any]], Any]


@dataclass
class _Registration:
    ref: TensorRef                      # the registered (local) tensor, kept alive
    offset: int                         # global index of its first row/expert along dim 0
    live: Callable[[], Any]             # the tensor standing for this name now
    gather: Optional[Callable[[], Any]]  # the whole tensor (a collective), for sharded sources
    mirror: Any = None                  # pinned host copy of a CUDA tensor


def named_items(tensors: NamedTensors, *, buffers: bool = True) -> list[tuple[str, Any, bool]]:
    """(name, value, is_buffer) of a module (parameters, then buffers), a mapping or pairs."""
    if hasattr(tensors, "named_parameters") and callable(tensors.named_parameters):
        items = [(n, p, False) for n, p in tensors.named_parameters()]
        if buffers:
            items += [(n, b, True) for n, b in tensors.named_buffers()]
        return items
    if isinstance(tensors, Mapping):
        return [(n, v, False) for n, v in tensors.items()]
    return [(n, v, False) for n, v in tensors]


class WeightSender:
    """One trainer rank of a weightsync job.

    coordinator: "host:port" of the job's coordinator; job: the job id; rank: this
    process's trainer rank in the job's mesh (HSDP replica-major, as torch ranks
    usually are). The job spec must have been published (it is waited for up to
    connect_timeout seconds).
    """

    def __init__(self, coordinator: str, job: str, rank: int, *,
                 connect_timeout: float = 60.0) -> None:
        self._store = _core.connect_store(coordinator, job, connect_timeout)
        self.spec = _core.read_job(self._store, connect_timeout)
        self.layout = _core.resolve_layout(self.spec.model, self.spec.layers)
        self.rank = rank
        self._sources = _core.TensorSources(self.layout, self.spec.mesh, rank)
        self._regs: dict[str, _Registration] = {}
        self._agent: Optional[_core.TrainerAgent] = None
        self._gathered: list[str] = []   # gathered on some rank: every rank joins, in this order
        self._needed: set[str] = set()   # gathered onto this rank
        self._full_mirrors: dict[str, Any] = {}

    # -- registration -------------------------------------------------------------------------

    def owned(self, name: str) -> tuple[int, int]:
        """The [start, stop) range along dim 0 (rows, or experts) this rank must hold of `name`."""
        g0, groups, r0, rows = _core.trainer_shard_box(self.layout, name, self.spec.mesh, self.rank)
        return (g0, g0 + groups) if self.layout.source(name).expert else (r0, r0 + rows)

    def register(self, tensors: NamedTensors, *, strict: bool = True,
                 rename: Optional[Callable[[str], Optional[str]]] = None) -> None:
        """Registers trainer tensors by layout source name.

        tensors: a torch.nn.Module (its parameters and buffers), a mapping or (name, value)
        pairs. A value is a tensor of the global shape, a DTensor (FSDP2 shard, EP experts)
        or a weightsync.Shard. rename maps a name to its layout name (None skips it).
        strict: a name the layout does not know is an error (module buffers excepted).
        Tensors are used in place: they must stay where they are (the optimizer updates them
        in place); push() checks that. A refused tensor fails the job's start-up for every
        agent, with the same message.
        """
        if self._agent is not None:
            raise InvalidArgumentError("register() must come before connect() and the first push()")
        unknown = []
        added: dict[str, _Registration] = {}
        try:
            for name, value, is_buffer in named_items(tensors):
                target = rename(name) if rename is not None else name
                if target is None:
                    continue
                if not self.layout.has_source(target):
                    if not is_buffer:
                        unknown.append(name)
                    continue
                if target in self._regs or target in added:
                    raise InvalidArgumentError(f"trainer tensor '{target}' registered twice")
                added[target] = self._register_one(target, value)
            if unknown and strict:
                raise InvalidArgumentError(
                    f"trainer rank {self.rank}: {len(unknown)} tensors are not in layout "
                    f"'{self.layout.name}': {', '.join(unknown[:8])}"
                    f"{' ...' if len(unknown) > 8 else ''} (pass rename= to map names, or "
                    "strict=False to skip them)")
        except WeightsyncError as e:
            # All or nothing: a refused call registers none of its tensors, so a corrected
            # retry can register them again.
            for name in added:
                self._sources.unset(name)
            self._fail_init(e)
            raise
        self._regs.update(added)

    def _register_one(self, name: str, value: Any) -> _Registration:
        source = self.layout.source(name)
        if isinstance(value, Shard):
            local, offset = value.local, value.global_offset(name, source.shape[0])
            gather, live, padded = value.gather, (lambda v=value: v.local), True
        elif is_dtensor(value):
            local, offset = dtensor_piece(name, value)
            gather, padded = (lambda v=value: full_tensor(v)), True
            live = lambda v=value: v.to_local()  # noqa: E731
        elif is_tensor(value):
            if tuple(value.shape) != tuple(source.shape):
                raise InvalidArgumentError(
                    f"trainer tensor '{name}' has shape {tuple(value.shape)}, the layout's is "
                    f"{tuple(source.shape)}: register the whole tensor, or a shard as a DTensor "
                    "or a weightsync.Shard")
            local, offset, gather, live, padded = value, 0, None, (lambda v=value: v), False
        else:
            raise InvalidArgumentError(
                f"trainer tensor '{name}': expected a torch.Tensor, a DTensor or a "
                f"weightsync.Shard, got {type(value).__name__}")
        ref = check_tensor(name, local, allow_padded_storage=padded)
        mirror = None
        pointer = ref.data_ptr
        if ref.device >= 0:
            # The engine converts on the CPU: a CUDA tensor is staged through pinned host memory
            # once per push (sources are read, never registered with the transport).
            torch = torch_module()
            mirror = torch.empty(ref.shape, dtype=local.dtype, pin_memory=True)
            pointer = int(mirror.data_ptr())
        self._sources.set_shard(name, pointer, ref.dtype, list(ref.shape), offset)
        return _Registration(ref, offset, live, gather, mirror)

    # -- life cycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Joins the job: rendezvous with every trainer and inference rank, plan, register the
        slot buffers and connect. Blocks until all of them are ready (init_timeout)."""
        if self._agent is not None:
            return
        try:
            missing = self._sources.missing()
            if missing:
                raise InvalidArgumentError(
                    f"trainer rank {self.rank}: {len(missing)} tensors of layout "
                    f"'{self.layout.name}' were not registered: {', '.join(missing[:8])}"
                    f"{' ...' if len(missing) > 8 else ''}")
            plan = _core.planned_gathers(self.layout, self.spec.mesh, self.spec.engines,
                                         self.spec.gather_threshold_bytes)
            union = set().union(*plan)
            self._needed = set(plan[self.rank])
            self._gathered = [s.name for s in self.layout.sources
                              if s.name in union and not self._sources.holds_whole(s.name)]
            for name in self._gathered:
                if self._regs[name].gather is None:
                    raise InvalidArgumentError(
                        f"trainer tensor '{name}' is sharded, and the plan needs it whole on some "
                        "rank (it is too small, or its shards are not FP8-block aligned, for "
                        "per-shard writes): register it as a DTensor, or as a weightsync.Shard "
                        "with gather=")
        except WeightsyncError as e:
            self._fail_init(e)
            raise
        agent = _core.TrainerAgent(self._store, self.rank, self._sources)
        _core.clear_init_refusal(self._store, _core.trainer_name(self.rank))
        agent.init()
        self._agent = agent

    def push(self, version: Optional[int] = None) -> dict:
        """Pushes the registered tensors' current values as weight version `version` (default:
        the next one). Blocks until every inference rank runs the new version. Every trainer
        rank pushes every version. Returns this rank's metrics: version, rank, wire_bytes and
        writes (really sent), and seconds spent in pause_s (waiting for the receivers to
        pause), convert_s (conversion + FP8 quantization), post_s and drain_s (writes),
        barrier_s (until every receiver resumed) and total_s (pause to resume)."""
        if self._agent is None:
            self.connect()
        version = self._agent.version + 1 if version is None else version
        held = []
        try:
            for name, reg in self._regs.items():
                check_unchanged(reg.ref, reg.live())
                if reg.mirror is not None:
                    reg.mirror.copy_(reg.ref.tensor)
            for name in self._gathered:
                whole = self._regs[name].gather()
                if name in self._needed:
                    held.append(whole)
                    self._set_full(name, whole)
        except Exception as e:
            _core.abort_version(self._store, version, _core.trainer_name(self.rank),
                                f"trainer rank {self.rank}: {e}",
                                getattr(e, "code", None) or "invalid argument")
            self._sources.clear_fulls()
            raise
        try:
            return self._agent.push(version)
        finally:
            self._sources.clear_fulls()
            del held

    def _set_full(self, name: str, whole: Any) -> None:
        ref = check_tensor(f"{name} (gathered)", whole, allow_padded_storage=True)
        pointer = ref.data_ptr
        if ref.device >= 0:
            mirror = self._full_mirrors.get(name)
            if mirror is None:
                mirror = torch_module().empty(ref.shape, dtype=whole.dtype, pin_memory=True)
                self._full_mirrors[name] = mirror
            mirror.copy_(whole)
            pointer = int(mirror.data_ptr())
        self._sources.set_full(name, pointer, ref.dtype, list(ref.shape))

    def close(self) -> None:
        """Leaves the job and releases the slot buffers and registrations. Idempotent."""
        self._agent = None
        self._regs.clear()
        self._full_mirrors.clear()

    def __enter__(self) -> "WeightSender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def version(self) -> int:
        """The last version pushed (0 before the first push)."""
        return 0 if self._agent is None else self._agent.version

    @property
    def connected(self) -> bool:
        return self._agent is not None

    def _fail_init(self, error: Exception) -> None:
        # This rank refused its own input: it may still retry, so the job is not failed; peers
        # waiting for it name this cause when they time out.
        try:
            _core.publish_init_refusal(self._store, _core.trainer_name(self.rank),
                                       f"trainer rank {self.rank}: {error}")
        except WeightsyncError:
            pass
