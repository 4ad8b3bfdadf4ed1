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
Where the tensors live decides where that happens: CUDA tensors are converted
by the CUDA kernels on their GPU into a device slot arena (written over
CUDA-IPC to GPUs of the same host, over UCX otherwise), CPU tensors on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _core
from .dtensor import Shard, dtensor_piece, full_tensor, gather_batches, is_dtensor, local_of
from .errors import InvalidArgumentError, MismatchError, WeightsyncError
from .torch_interop import TensorRef, check_tensor, check_unchanged, is_tensor, torch_module
from .job import _store_address
from .metrics import AgentMetrics, MetricsAccess

NamedTensors = Union[Mapping[str, Any], Iterable[tuple[str, Any]], Any]


@dataclass
class _Registration:
    ref: TensorRef                      # the registered (local) tensor, kept alive
    offset: int                         # global index of its first row/expert along dim 0
    value: Any                          # what was registered: tensor, DTensor or Shard
    gather: Optional[Callable[[], Any]]  # the whole tensor (a collective), for sharded sources
    key: str = ""                       # its name in `owner`
    owner: Any = None                   # the module it was registered from, looked up per push


def local_tensor(value: Any) -> Any:
    """The local tensor a registered value stands for now."""
    if isinstance(value, Shard):
        return value.local
    if is_dtensor(value):
        return local_of(value)
    return value


def device_ordinal(device: Any) -> int:
    """-1 for the CPU, the CUDA ordinal for a GPU ("cuda" is the current one)."""
    if isinstance(device, int):
        return device
    kind, _, index = str(device).partition(":")
    if kind == "cpu":
        return -1
    if kind != "cuda":
        raise InvalidArgumentError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return int(index) if index else int(torch_module().cuda.current_device())


def device_name(ordinal: int) -> str:
    return "the CPU" if ordinal < 0 else f"cuda:{ordinal}"


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


class WeightSender(MetricsAccess):
    """One trainer rank of a weightsync job.

    coordinator: "host:port" of the job's coordinator (or store="etcd://host:port[,...]" for a
    job coordinated on etcd, coordinator None); job: the job id; rank: this
    process's trainer rank in the job's mesh (HSDP replica-major, as torch ranks
    usually are). The job spec must have been published (it is waited for up to
    connect_timeout seconds). device: where this rank's tensors live ("cpu", "cuda:N");
    by default the device of the first tensor registered, and for CUDA tensors the
    current CUDA device (torch.cuda.set_device(local_rank), as torchrun trainers do).
    Every tensor of a rank must live there.
    """

    def __init__(self, coordinator: Optional[str], job: str, rank: int, *, device: Any = None,
                 connect_timeout: float = 60.0, store: Optional[str] = None,
                 metrics_port: Optional[int] = None, metrics_host: str = "0.0.0.0",
                 job_secret: Optional[str] = None) -> None:
        self._store = _core.connect_store(_store_address(coordinator, store), job,
                                          connect_timeout, job_secret or "")
        self._metrics = AgentMetrics("trainer", _core.trainer_name(rank), metrics_port,
                                     metrics_host)
        self.spec = _core.read_job(self._store, connect_timeout)
        self.layout = _core.job_layout(self.spec)
        self.rank = rank
        self._sources = _core.TensorSources(self.layout, self.spec.mesh, rank)
        self._regs: dict[str, _Registration] = {}
        self._agent: Optional[_core.TrainerAgent] = None
        self._gathered: list[str] = []   # gathered on some rank: every rank joins, in this order
        self._needed: set[str] = set()   # gathered onto this rank
        self._batches: list = []          # FSDP DTensors gathered through persistent buffers
        self._batched_fulls: list[tuple] = []  # set_full arguments of those needed here
        self._device: Optional[int] = None if device is None else device_ordinal(device)
        self._device_owner = "the device= argument" if device is not None else ""

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
        in place); push() checks that. A call with a refused tensor registers none of its
        tensors (a corrected call may follow); peers that time out waiting for this rank
        name the refusal.
        """
        if self._agent is not None:
            raise InvalidArgumentError("register() must come before connect() and the first push()")
        unknown = []
        owner = tensors if hasattr(tensors, "named_parameters") else None
        regs: dict[str, _Registration] = {}
        try:
            for name, value, is_buffer in named_items(tensors):
                target = rename(name) if rename is not None else name
                if target is None:
                    continue
                if not self.layout.has_source(target):
                    if not is_buffer:
                        unknown.append(name)
                    continue
                if target in self._regs or target in regs:
                    raise InvalidArgumentError(f"trainer tensor '{target}' registered twice")
                regs[target] = self._register_one(target, value)
                regs[target].key, regs[target].owner = name, owner
            # One call into the core for all of them (it checks each against the layout and mesh).
            self._sources.set_shards([(n, r.ref.data_ptr, r.ref.dtype, list(r.ref.shape), r.offset,
                                       r.ref.device) for n, r in regs.items()])
            if unknown and strict:
                raise InvalidArgumentError(
                    f"trainer rank {self.rank}: {len(unknown)} tensors are not in layout "
                    f"'{self.layout.name}': {', '.join(unknown[:8])}"
                    f"{' ...' if len(unknown) > 8 else ''} (pass rename= to map names, or "
                    "strict=False to skip them)")
        except WeightsyncError as e:
            # All or nothing: a refused call registers none of its tensors, so a corrected
            # retry can register them again.
            for name in regs:
                self._sources.unset(name)
            self._fail_init(e)
            raise
        self._regs.update(regs)

    def _register_one(self, name: str, value: Any) -> _Registration:
        source = self.layout.source(name)
        if isinstance(value, Shard):
            local, offset = value.local, value.global_offset(name, source.shape[0])
            gather, padded = value.gather, True
        elif is_dtensor(value):
            local, offset = dtensor_piece(name, value)
            gather, padded = (lambda v=value: full_tensor(v)), True
        elif is_tensor(value):
            if tuple(value.shape) != tuple(source.shape):
                raise InvalidArgumentError(
                    f"trainer tensor '{name}' has shape {tuple(value.shape)}, the layout's is "
                    f"{tuple(source.shape)}: register the whole tensor, or a shard as a DTensor "
                    "or a weightsync.Shard")
            local, offset, gather, padded = value, 0, None, False
        else:
            raise InvalidArgumentError(
                f"trainer tensor '{name}': expected a torch.Tensor, a DTensor or a "
                f"weightsync.Shard, got {type(value).__name__}")
        ref = check_tensor(name, local, allow_padded_storage=padded)
        if ref.dtype != source.dtype:
            raise InvalidArgumentError(
                f"trainer tensor '{name}' is {ref.dtype}, the layout declares it {source.dtype} "
                "(no implicit casts: the FP8 scales depend on the precision quantized from)")
        self._claim_device(name, ref.device)
        # Used where it lives: a CUDA tensor's device pointer goes to the engine, which converts
        # from it on that GPU; nothing is copied or pinned.
        return _Registration(ref, offset, value, gather)

    def _claim_device(self, name: str, device: int) -> None:
        """Every tensor of the rank lives on the rank's device (the first one's, or device=)."""
        if self._device is None:
            self._device = -1 if device < 0 else int(torch_module().cuda.current_device())
            self._device_owner = f"'{name}'"
            if device >= 0 and device != self._device:
                raise InvalidArgumentError(
                    f"trainer tensor '{name}' is on cuda:{device}, but this rank's GPU is "
                    f"cuda:{self._device} (torch.cuda.current_device()): call "
                    "torch.cuda.set_device(local_rank) before building the model, or pass "
                    "device= to WeightSender")
        if device != self._device:
            raise InvalidArgumentError(
                f"trainer tensor '{name}' is on {device_name(device)}, but this rank's tensors "
                f"live on {device_name(self._device)} (set by {self._device_owner}): a trainer "
                "rank converts all its tensors on one device; move them there (weightsync "
                "never copies them)")

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
            # Evenly sharded FSDP DTensors are gathered in one collective per process group
            # into whole tensors allocated here once (the rest call full_tensor() per push).
            self._batches, _ = gather_batches([(n, self._regs[n].value) for n in self._gathered
                                               if is_dtensor(self._regs[n].value)])
            for batch in self._batches:
                for name, whole in batch.whole.items():
                    if name in self._needed:
                        ref = check_tensor(f"{name} (gathered)", whole)
                        self._batched_fulls.append((name, ref.data_ptr, ref.dtype,
                                                    list(ref.shape), ref.device))
        except WeightsyncError as e:
            self._fail_init(e)
            raise
        agent = _core.TrainerAgent(self._store, self.rank, self._sources)
        self._metrics.attach(agent)
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
        version = self._agent.attempted + 1 if version is None else version
        held = []
        try:
            self._check_unchanged()
            # Collectives: every rank, same order (NCCL on GPUs): the batches, then the others.
            batched = set()
            for batch in self._batches:
                batched.update(batch.run())
            for args in self._batched_fulls:
                self._sources.set_full(*args)
            for name in self._gathered:
                if name in batched:
                    continue
                whole = self._regs[name].gather()
                if name in self._needed:
                    held.append(whole)
                    self._set_full(name, whole)
            if self._device is not None and self._device >= 0:
                # The engine converts on its own stream: the optimizer step and the gathers
                # queued on the current stream must be done before it reads the tensors.
                torch_module().cuda.current_stream(self._device).synchronize()
        except Exception as e:
            self.abort_version(version, e)
            self._sources.clear_fulls()
            raise
        try:
            return self._agent.push(version)
        finally:
            self._sources.clear_fulls()
            del held

    def _check_unchanged(self) -> None:
        """Each registered tensor is still what the model holds under its name, in the same
        memory (a module is looked up again: a replaced or re-allocated parameter is caught)."""
        tables: dict[int, dict[str, Any]] = {}
        for name, reg in self._regs.items():
            value = reg.value
            if reg.owner is not None:
                table = tables.get(id(reg.owner))
                if table is None:
                    table = {n: v for n, v, _ in named_items(reg.owner)}
                    tables[id(reg.owner)] = table
                if reg.key not in table:
                    raise MismatchError(f"'{name}' ({reg.key}) is no longer in the registered "
                                        "module: register again (a new job) after changing it")
                value = table[reg.key]
            check_unchanged(reg.ref, local_tensor(value))

    def _set_full(self, name: str, whole: Any) -> None:
        # In place on the rank's device (the core refuses a gather that returned elsewhere).
        ref = check_tensor(f"{name} (gathered)", whole, allow_padded_storage=True)
        self._sources.set_full(name, ref.data_ptr, ref.dtype, list(ref.shape), ref.device)

    def close(self) -> None:
        """Leaves the job cleanly and releases the slot buffers and registrations. Idempotent.
        (A sender dropped without close(), e.g. by a crash, is reported lost to its peers.)"""
        if self._agent is not None:
            try:
                self._agent.leave()
            except WeightsyncError:
                pass  # the coordinator may be gone
        self._agent = None
        self._regs.clear()
        self._batches, self._batched_fulls = [], []

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

    @property
    def device(self) -> Optional[str]:
        """Where this rank's tensors live and are converted ("cpu", "cuda:N"; None before any)."""
        return None if self._device is None else ("cpu" if self._device < 0
                                                  else f"cuda:{self._device}")

    @property
    def slot_bytes(self) -> int:
        """Bytes of this rank's slot arena (on its GPU for CUDA tensors; 0 before connect())."""
        return 0 if self._agent is None else int(self._agent.slot_bytes)

    def fail_job(self, error: Exception) -> None:
        """Fails the job's start-up for every agent with this error (the first failure wins):
        for a mismatch no retry can fix, where peers should not wait for this rank."""
        try:
            _core.fail_init(self._store, _core.trainer_name(self.rank),
                            f"trainer rank {self.rank}: {error}",
                            getattr(error, "code", None) or "invalid argument")
        except WeightsyncError:
            pass

    def abort_version(self, version: int, error: Exception) -> None:
        """Fails version `version` for every agent with this error (e.g. this rank could not
        produce its weights for it); the job may go on with a later version."""
        _core.abort_version(self._store, version, _core.trainer_name(self.rank),
                            f"trainer rank {self.rank}: {error}",
                            getattr(error, "code", None) or "invalid argument")

    @property
    def next_version(self) -> int:
        """The version push() takes by default: after every version pushed, failed ones too."""
        return 1 if self._agent is None else self._agent.attempted + 1

    def _fail_init(self, error: Exception) -> None:
        # This rank refused its own input: it may still retry, so the job is not failed; peers
        # waiting for it name this cause when they time out.
        try:
            _core.publish_init_refusal(self._store, _core.trainer_name(self.rank),
                                       f"trainer rank {self.rank}: {error}")
        except WeightsyncError:
            pass
