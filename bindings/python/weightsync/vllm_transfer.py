"""weightsync as a vLLM weight-transfer backend: the worker side (vLLM >= 0.33).

vLLM creates this engine in every worker when it runs with
``weight_transfer_config=WeightTransferConfig(backend="weightsync")`` (the backend is
registered by the ``vllm.general_plugins`` entry point, :mod:`weightsync.vllm_plugin`).
The trainer side is :mod:`weightsync.vllm_trainer`; it sends the init info below through
vLLM's ``init_weight_transfer_engine``. One ``update_weights`` call is one weightsync
version: it blocks until the trainers' push has landed on every inference rank of the job
(all-or-nothing), written in place into the model's parameters and ``*_weight_scale_inv``
buffers, and the post-update hooks ran. ``start_weight_update`` / ``finish_weight_update``
have nothing to do (the weights are written in place, not loaded through ``load_weights``).

With a flip job (``job_spec(flip=True)``, zero-pause updates) the version lands in a staging
copy while the worker keeps generating with the live weights: ``update_weights`` only starts
receiving it and returns at once (``defers_processing``), and ``finish_weight_update`` waits
until every inference rank landed, then copies staging over the model's tensors, runs the hooks
and commits: the worker's only pause. A failed version raises from ``finish_weight_update``.

For vLLM versions without this API use the worker extension, :mod:`weightsync.vllm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)

from .errors import (
    InvalidArgumentError,
    MismatchError,
    ProtocolError,
    UnsupportedError,
    WeightsyncError,
)
from .inference import WeightReceiver
from .vllm import _resolve

BACKEND = "weightsync"


def _first(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


@dataclass
class WeightSyncInitInfo(WeightTransferInitInfo):
    """What ``init_weight_transfer_engine`` passes to every worker (the same dict for all).

    coordinator / job: the weightsync coordinator ("host:port") and the job id.
    engine: the weightsync engine index of this vLLM instance (data-parallel replica d of it
    is engine ``engine + d``). rank: the inference rank inside that engine (default: the
    worker's rank in vLLM's TP x PP world). layout_fingerprint: the trainer's layout
    fingerprint (the trainer engine sends it); a worker that resolves the job's model to
    another layout refuses to join. after_update: "module:function" called as
    function(model, version) after every version landed (e.g. recompute MLA's absorbed
    weights); by default the model's own ``weightsync_after_update(version)`` if it has one.
    """

    coordinator: str
    job: str
    engine: int = 0
    rank: Optional[int] = None
    layout_fingerprint: Optional[str] = None
    after_update: Optional[str] = None
    connect_timeout: float = 60.0

    def __post_init__(self) -> None:
        host, sep, port = self.coordinator.rpartition(":") if isinstance(
            self.coordinator, str) else ("", "", "")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"weightsync init_info: coordinator must be 'host:port', got "
                             f"{self.coordinator!r}")
        if not isinstance(self.job, str) or not self.job:
            raise ValueError(f"weightsync init_info: job must be a non-empty string, got "
                             f"{self.job!r}")
        for field, value in (("engine", self.engine), ("rank", self.rank)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                raise ValueError(f"weightsync init_info: {field} must be an int >= 0, got "
                                 f"{value!r}")
        for field, value in (("layout_fingerprint", self.layout_fingerprint),
                             ("after_update", self.after_update)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"weightsync init_info: {field} must be a non-empty string, "
                                 f"got {value!r}")
        if not isinstance(self.connect_timeout, (int, float)) or self.connect_timeout <= 0:
            raise ValueError(f"weightsync init_info: connect_timeout must be > 0 seconds, got "
                             f"{self.connect_timeout!r}")


@dataclass
class WeightSyncUpdateInfo(WeightTransferUpdateInfo):
    """What ``update_weights`` passes: the weightsync version to receive (default: the next)."""

    version: Optional[int] = None

    def __post_init__(self) -> None:
        v = self.version
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"weightsync update_info: version must be an int >= 1, got {v!r}")


class WeightSyncWeightTransferEngine(
        WeightTransferEngine[WeightSyncInitInfo, WeightSyncUpdateInfo]):
    """vLLM worker-side engine over a :class:`weightsync.WeightReceiver`."""

    init_info_cls = WeightSyncInitInfo
    update_info_cls = WeightSyncUpdateInfo
    # The model's own tensors are registered once, at init; a draft model would be another job.
    supports_draft_weight_update = False

    def __init__(self, config: Any, vllm_config: Any, device: torch.device,
                 model: torch.nn.Module) -> None:
        super().__init__(config, vllm_config, device, model)
        self.receiver: Optional[WeightReceiver] = None
        self.last_result: Optional[dict] = None
        self._registered_model: Optional[torch.nn.Module] = None
        self._job = ""
        self.defers_processing = False  # flip jobs: update_weights only starts the version

    # -- vLLM's life cycle ------------------------------------------------------------------

    def init_transfer_engine(self, init_info: WeightSyncInitInfo) -> None:
        """Joins the job: registers the model's tensors as this rank's destination and blocks
        until every trainer and inference rank joined (the job's init_timeout)."""
        if not isinstance(init_info, WeightSyncInitInfo):
            raise ValueError(f"weightsync: expected WeightSyncInitInfo, got "
                             f"{type(init_info).__name__}")
        if self.receiver is not None:
            raise ValueError(
                f"weightsync: this worker already joined job '{self._job}' as "
                f"{self.receiver.peer.name}; call shutdown_weight_transfer_engine first")
        parallel = self.parallel_config
        engine = init_info.engine + int(getattr(parallel, "data_parallel_index", 0) or 0)
        rank = init_info.rank if init_info.rank is not None else int(getattr(parallel, "rank", 0))
        receiver = WeightReceiver(init_info.coordinator, init_info.job, engine=engine, rank=rank,
                                  connect_timeout=init_info.connect_timeout)
        model = self.model
        try:
            try:
                self._check_job(receiver, init_info)
                self._check_names(receiver, model, init_info.job)
                hook = self._hook(init_info.after_update)
            except WeightsyncError as e:
                receiver.fail_job(e)  # the trainers fail at once, with this message
                raise
            receiver.register(model)
            if hook is not None:
                receiver.add_hook(lambda version: hook(model, version))
            elif callable(getattr(model, "weightsync_after_update", None)):
                receiver.add_hook(model.weightsync_after_update)
            receiver.connect()
        except BaseException:
            receiver.close(timeout=0)
            raise
        self.receiver = receiver
        self._job = init_info.job
        self._registered_model = model
        self.defers_processing = receiver.spec.flip

    def start_weight_update(self) -> None:
        """Nothing to prepare: the version number comes with update_weights, which starts it
        (flip) or receives it; refuses before init."""
        self._require()

    def update_weights(self, update_info: dict[str, Any]) -> None:
        """Receives one weightsync version (see receive_weights); with flip, starts it."""
        self.receive_weights(self.parse_update_info(update_info))
        if self.device.type == "cuda" and not self.defers_processing:
            torch.cuda.synchronize(self.device)

    def receive_weights(self, update_info: WeightSyncUpdateInfo) -> None:
        """Receives version `update_info.version` (default: the next one): blocks until every
        trainer's writes landed on every inference rank and the hooks ran. With flip, starts
        receiving it into staging and returns at once (finish_weight_update completes it). A
        version that is not the next one is refused before anything is written."""
        receiver = self._require()
        if self.model is not self._registered_model:
            raise UnsupportedError(
                "weightsync writes into the model registered at init_weight_transfer_engine; "
                "it cannot retarget an update at another model (e.g. a draft model)")
        held = receiver.version
        expected = receiver.next_version  # after every version taken part in, failed ones too
        version = expected if update_info.version is None else update_info.version
        if version <= held:
            raise ProtocolError(
                f"weightsync {receiver.peer.name}: version {version} is not newer than version "
                f"{held}, which this worker holds; nothing was written")
        if version != expected:
            raise ProtocolError(
                f"weightsync {receiver.peer.name}: version {version} is not the next version "
                f"({expected}: versions go one by one, and a failed version's number is not "
                "used again); nothing was written")
        if self.defers_processing:
            self.last_result = None
            receiver.start_weight_update(version)
            return
        self.last_result = receiver.update(version)

    def finish_weight_update(self) -> None:
        """With flip, completes the version update_weights started: waits until it landed on
        every inference rank, then pauses this worker only for the copy into the model's tensors,
        the hooks and the commit (last_result has the times); raises the version's error, the
        model still holding the previous version. Otherwise nothing to finalize: update_weights
        committed its version. With nothing started it returns (a second call after a failed
        finish closes vLLM's update session)."""
        receiver = self._require()
        if receiver.pending_version is None:
            return
        self.last_result = receiver.finish_weight_update()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def drain_pending(self) -> None:
        """Flip: completes a started version, as finish_weight_update (vLLM's contract for
        engines with defers_processing). Idempotent."""
        if self.receiver is not None:
            self.finish_weight_update()

    def shutdown(self) -> None:
        """Leaves the job and releases the registrations; vLLM keeps serving. Idempotent."""
        receiver, self.receiver = self.receiver, None
        self._registered_model = None
        if receiver is not None:
            if receiver.pending_version is not None:
                try:  # a started version completes (or fails) before the worker leaves
                    receiver.finish_weight_update()
                except WeightsyncError:
                    pass
            receiver.close()

    # -- helpers ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The weightsync version this worker holds (0 before the first update)."""
        return 0 if self.receiver is None else self.receiver.version

    def _require(self) -> WeightReceiver:
        if self.receiver is None:
            raise ValueError("weightsync: init_weight_transfer_engine() must be called (and "
                             "succeed) before a weight update")
        return self.receiver

    @staticmethod
    def _hook(qualname: Optional[str]) -> Any:
        if qualname is None:
            return None
        try:
            hook = _resolve(qualname)
        except (ImportError, AttributeError, ValueError) as e:
            raise InvalidArgumentError(f"weightsync init_info: after_update '{qualname}' cannot "
                                       f"be loaded in this worker: {e}") from e
        if not callable(hook):
            raise InvalidArgumentError(f"weightsync init_info: after_update '{qualname}' is not "
                                       "callable")
        return hook

    def _check_job(self, receiver: WeightReceiver, info: WeightSyncInitInfo) -> None:
        layout = receiver.layout
        if info.layout_fingerprint is not None and info.layout_fingerprint != layout.fingerprint:
            raise MismatchError(
                f"weightsync {receiver.peer.name}: the trainer's layout has fingerprint "
                f"{info.layout_fingerprint}, but job '{info.job}' (model '{receiver.spec.model}') "
                f"resolves here to layout '{layout.name}' with fingerprint {layout.fingerprint}: "
                "trainer and vLLM must use the same layout (and weightsync version)")
        spec = receiver.spec.engines[receiver.engine]
        parallel = self.parallel_config
        pp = int(getattr(parallel, "pipeline_parallel_size", 1))
        tp = int(getattr(parallel, "tensor_parallel_size", 1))
        ep = tp if getattr(parallel, "enable_expert_parallel", False) else 1
        if pp != 1:
            raise UnsupportedError(f"weightsync: pipeline parallelism ({pp} stages) is not "
                                   "supported; run vLLM with pipeline_parallel_size=1")
        if ep > 1 and int(getattr(parallel, "data_parallel_size", 1)) > 1:
            raise UnsupportedError(
                "weightsync: expert parallelism across data-parallel replicas is not supported "
                "(each replica is one weightsync engine; its experts must stay inside it)")
        if spec.ranks != tp or spec.ep != ep or (ep == 1 and spec.tp != tp):
            raise MismatchError(
                f"weightsync {receiver.peer.name}: job '{info.job}' describes engine "
                f"{receiver.engine} as {spec.ranks} ranks (TP {spec.tp}, EP {spec.ep}), but this "
                f"vLLM runs tensor_parallel_size={tp}, expert parallel "
                f"{'on' if ep > 1 else 'off'} (EP {ep})")

    @staticmethod
    def _check_names(receiver: WeightReceiver, model: torch.nn.Module, job: str) -> None:
        expected = [t.name for t in receiver.expected]
        held = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
        missing = [n for n in expected if n not in held]
        if missing:
            wanted = set(expected)
            extra = [n for n, _ in model.named_parameters() if n not in wanted]
            raise MismatchError(
                f"weightsync {receiver.peer.name}: the model does not match layout "
                f"'{receiver.layout.name}' of job '{job}': {len(missing)} of its "
                f"{len(expected)} tensors are missing from the model (first: {_first(missing)}); "
                f"{len(extra)} model parameters are not in the layout"
                f"{f' (first: {_first(extra)})' if extra else ''}")

