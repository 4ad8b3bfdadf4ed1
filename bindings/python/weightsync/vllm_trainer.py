"""weightsync as a vLLM weight-transfer backend: the trainer side (vLLM >= 0.33).

::

    from vllm.distributed.weight_transfer import ModuleSource, WeightTransferTrainerFactory
    from weightsync.vllm_trainer import WeightSyncTrainerInitInfo

    info = WeightSyncTrainerInitInfo("10.0.0.1:29600", "run-7", rank=dist.get_rank(),
                                     model="glm5", job_options={"engines": 2, "engine_ranks": 8,
                                                                "engine_ep": 8})
    engine = WeightTransferTrainerFactory.trainer_init(info, client=client,
                                                       source=ModuleSource(model))
    for step in range(steps):
        train_step()
        engine.send_weights()        # one weightsync version, on every trainer rank
    engine.shutdown()

Every trainer rank calls ``trainer_init`` and ``send_weights``; rank 0 is the sender: it
publishes the job (when ``model`` is given), and drives vLLM through ``client``
(``init_weight_transfer_engine``, then per version ``start_weight_update``,
``update_weights({"version": v})`` and ``finish_weight_update(str(v))``) while every rank
pushes its own shard with :class:`WeightSender`. With a flip job (``job_options={"flip": True}``)
rank 0 calls ``finish_weight_update`` only once the version landed on every inference rank, so
vLLM keeps generating during the wire time and pauses only for the flip (do not pause vLLM
around ``send_weights`` then). Importing this module registers the backend
(as vLLM's plugin loader does in vLLM's own processes). The trainer mesh comes from the source's
``ParamMeta`` (owners / mesh_shape / placements, :mod:`weightsync.param_meta`); it is never
described a second time. The source's tensors are registered in place at ``trainer_init``:
it must yield the same tensors every round (``ModuleSource.iter_local`` over plain tensors or
FSDP2 DTensors does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

from vllm.distributed.weight_transfer.base import TrainerInitInfo, TrainerWeightTransferEngine

from . import _core, param_meta, vllm_plugin
from .errors import MismatchError, TimeoutError, WeightsyncError
from .job import job_spec, publish_job, resolve_layout
from .trainer import WeightSender
from .vllm_transfer import BACKEND, WeightSyncInitInfo

_MESH_KEYS = ("model", "layers", "trainer_ranks", "trainer_ep", "trainer_replicas")

# vLLM's plugin loader seldom runs in a trainer process: importing this module (needed for the
# init info anyway) registers the backend with WeightTransferTrainerFactory too. Idempotent.
vllm_plugin.register()


@dataclass
class WeightSyncTrainerInitInfo(TrainerInitInfo):
    """Trainer-side init info of the ``weightsync`` backend (``rank`` is keyword-only).

    coordinator / job: the weightsync coordinator ("host:port", started by the launcher:
    ``weightsync.Coordinator`` or ``weightsync coordinator``) and the job id. model / layers:
    the layout; given, rank 0 publishes the job, with the trainer mesh derived from the
    source's ParamMeta and ``job_options`` passed to :func:`weightsync.job_spec` (the fleet:
    engines, engine_ranks, engine_tp, engine_ep; transport, timeouts ...). None: the job is
    already published, and the ParamMeta placements must agree with its mesh. staging:
    inference ranks receive into a staging copy, so a failed version leaves the live weights
    untouched (costs a copy of the weights). trainer_ranks: default torch.distributed's world
    size (or the highest owner + 1). engine: the weightsync engine index of the vLLM instance
    behind ``client``. after_update: the workers' hook, "module:function" (see
    WeightSyncInitInfo).
    """

    backend: ClassVar[str] = BACKEND

    coordinator: str
    job: str
    model: Optional[str] = None
    layers: Optional[int] = None
    job_options: dict = field(default_factory=dict)
    staging: bool = False
    trainer_ranks: Optional[int] = None
    engine: int = 0
    after_update: Optional[str] = None
    connect_timeout: float = 60.0

    def __post_init__(self) -> None:
        # The worker validates the shared fields the same way.
        WeightSyncInitInfo(self.coordinator, self.job, engine=self.engine,
                           after_update=self.after_update, connect_timeout=self.connect_timeout)
        if not isinstance(self.rank, int) or self.rank < 0:
            raise ValueError(f"weightsync trainer init_info: rank must be an int >= 0, got "
                             f"{self.rank!r}")
        twice = sorted(set(self.job_options) & set(_MESH_KEYS))
        if twice:
            raise ValueError(
                f"weightsync trainer init_info: job_options must not set {', '.join(twice)}: "
                "the model is `model`, and the trainer mesh comes from the WeightSource's "
                "ParamMeta")
        if self.job_options and self.model is None:
            raise ValueError("weightsync trainer init_info: job_options need `model` (the job "
                             "is published only when model is given)")
        if self.trainer_ranks is not None and self.trainer_ranks < 1:
            raise ValueError(f"weightsync trainer init_info: trainer_ranks must be >= 1, got "
                             f"{self.trainer_ranks}")


def _run_beside(work: Callable[[], Any], rpc: Callable[[], Any], timeout: float) -> None:
    """Runs rpc() in a thread while work() runs here (both block until the other side
    answers); raises the first error, the RPC's first (it names the inference side)."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            rpc()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    thread = threading.Thread(target=call, name="weightsync-vllm-rpc", daemon=True)
    thread.start()
    try:
        work()
    except BaseException as e:
        thread.join(timeout)
        if errors:
            raise errors[0] from e
        raise
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the vLLM client call did not return within {timeout} s")
    if errors:
        raise errors[0]


def _await_landed(sender: WeightSender, version: int, running: Callable[[], bool]) -> None:
    """Returns once every inference rank of the job published that it landed `version`, or
    once running() is False (the push ended: failed, or past its landed barrier)."""
    store = sender._store
    peers = _core.fleet_peers(sender.spec.engines, sender.layout.experts)
    for peer in peers:
        key = f"v/{version}/landed/{peer.name}"  # protocol::keys::landed
        while running():
            try:
                store.wait(key, 0.2)
                break
            except TimeoutError:
                continue


class WeightSyncTrainerWeightTransferEngine(
        TrainerWeightTransferEngine[WeightSyncTrainerInitInfo]):
    """vLLM trainer-side engine over a :class:`weightsync.WeightSender`."""

    init_info_cls = WeightSyncTrainerInitInfo

    def __init__(self, *, client: Any, source: Any, sender: WeightSender, mode: str,
                 pieces: dict[str, param_meta.MetaPiece], rank: int) -> None:
        super().__init__(client=client, source=source, is_sender=rank == 0, rank=rank)
        self.sender = sender
        self.mode = mode
        self.pieces = pieces
        self.last_metrics: Optional[dict] = None

    @classmethod
    def trainer_init(cls, init_info: WeightSyncTrainerInitInfo, *, client: Any,
                     source: Any = None) -> "WeightSyncTrainerWeightTransferEngine":
        if not isinstance(init_info, WeightSyncTrainerInitInfo):
            raise ValueError(f"weightsync: expected WeightSyncTrainerInitInfo, got "
                             f"{type(init_info).__name__}")
        if source is None:
            raise ValueError("the weightsync trainer engine needs a WeightSource (e.g. "
                             "vllm.distributed.weight_transfer.ModuleSource(model))")
        if source.implements_iter_local():
            mode = "iter_local"
        elif source.implements_iter_full():
            mode = "iter_full"
        else:
            raise TypeError(f"{type(source).__name__} implements neither iter_local nor "
                            "iter_full")
        metas = list(source.metadata)
        rank = init_info.rank
        ranks = param_meta.trainer_ranks(metas, init_info.trainer_ranks)
        if init_info.model is not None:
            # A built-in name or layout file, or a layout object (e.g. from ws.derive_layout).
            layout = (init_info.model if isinstance(init_info.model, _core.Layout)
                      else resolve_layout(init_info.model, init_info.layers))
            param_meta.check_names(layout, metas)
            mesh = param_meta.derive_mesh(layout, metas, ranks)
            if rank == 0:
                spec = job_spec(init_info.model, layers=init_info.layers,
                                trainer_ranks=ranks, trainer_ep=mesh.ep,
                                trainer_replicas=mesh.replicas, **init_info.job_options)
                spec.staging = init_info.staging or spec.flip  # flip implies staging
                publish_job(init_info.coordinator, init_info.job, spec)
        sender = WeightSender(init_info.coordinator, init_info.job, rank,
                              connect_timeout=init_info.connect_timeout)
        try:
            try:
                if init_info.model is None:
                    param_meta.check_names(sender.layout, metas)
                    param_meta.check_mesh(sender.layout, metas, sender.spec.mesh)
                pieces = param_meta.pieces(metas, rank, ranks, getattr(source, mode)())
            except WeightsyncError as e:
                sender.fail_job(e)  # every other agent fails at once, with this message
                raise
            sender.register(pieces)
            engine = cls(client=client, source=source, sender=sender, mode=mode,
                         pieces=pieces, rank=rank)
            if engine.is_sender:
                payload = {"coordinator": init_info.coordinator, "job": init_info.job,
                           "engine": init_info.engine,
                           "layout_fingerprint": sender.layout.fingerprint,
                           "after_update": init_info.after_update,
                           "connect_timeout": init_info.connect_timeout}
                _run_beside(sender.connect,
                            lambda: client.init_weight_transfer_engine(payload),
                            sender.spec.init_timeout + init_info.connect_timeout)
            else:
                sender.connect()
        except BaseException:
            sender.close()
            raise
        return engine

    def send_weights(self) -> None:
        """Pushes the source's current values as the next weightsync version (every rank);
        rank 0 drives vLLM's start / update / finish around it."""
        version = self.sender.next_version
        try:
            param_meta.update_locals(self.pieces, getattr(self.source, self.mode)())
        except Exception as e:
            self.sender.abort_version(version, e)
            raise
        if not self.is_sender:
            self.last_metrics = self._push(version)
            return
        self.client.start_weight_update()
        if self.sender.spec.flip:
            self._send_flip(version)
            return
        _run_beside(lambda: setattr(self, "last_metrics", self._push(version)),
                    lambda: self.client.update_weights({"version": version}),
                    self.sender.spec.step_timeout + 30)
        self.client.finish_weight_update(weight_version=str(version))

    def _send_flip(self, version: int) -> None:
        """Flip jobs: the workers start receiving (update_weights returns at once) and keep
        generating; finish_weight_update, their only pause, comes once every inference rank
        landed the version (or the push ended, e.g. failed: finish then raises its error)."""
        self.client.update_weights({"version": version})
        errors: list[BaseException] = []

        def push() -> None:
            try:
                self.last_metrics = self._push(version)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)

        thread = threading.Thread(target=push, name="weightsync-push", daemon=True)
        thread.start()
        _await_landed(self.sender, version, thread.is_alive)
        try:
            self.client.finish_weight_update(weight_version=str(version))
        except BaseException as e:
            # vLLM's worker keeps its update session open when finish raises; a second finish
            # (nothing pending now) closes it, so the next version can start.
            try:
                self.client.finish_weight_update()
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                pass
            thread.join(self.sender.spec.step_timeout + 30)
            if errors:
                raise errors[0] from e
            raise
        thread.join(self.sender.spec.step_timeout + 30)
        if thread.is_alive():
            raise TimeoutError(f"weightsync: version {version}'s push did not end within "
                               f"{self.sender.spec.step_timeout + 30} s of the commit")
        if errors:
            raise errors[0]

    def _push(self, version: int) -> dict:
        try:
            return self.sender.push(version)
        except MismatchError as e:
            if "changed since it was registered" not in str(e):
                raise
            raise MismatchError(
                f"{e} (weightsync reads the trainer's tensors in place: the WeightSource must "
                f"yield the same tensors every round, as {self.mode} over the model's "
                "parameters does)") from e

    @property
    def version(self) -> int:
        """The last version sent (0 before the first)."""
        return self.sender.version

    def shutdown(self) -> None:
        """Leaves the job (the client's vLLM keeps serving). Idempotent."""
        self.sender.close()
