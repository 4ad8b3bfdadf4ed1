"""Jobs: the coordinator, the job spec every agent reads, and reference conversions.

A job is one trainer mesh pushing one model's weights into one inference fleet.
Whoever launches it (often trainer rank 0) starts a :class:`Coordinator` (or
the ``weightsync coordinator`` command) and publishes a :class:`JobSpec` under
a job id; every agent then connects to ``host:port`` with that id.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional, Sequence, Union

from . import _core
from .errors import InvalidArgumentError
from .torch_interop import check_tensor, from_bytes

Coordinator = _core.Coordinator
JobSpec = _core.JobSpec
Layout = _core.Layout
TrainerMesh = _core.TrainerMesh
EngineSpec = _core.EngineSpec
PeerSpec = _core.PeerSpec
resolve_layout = _core.resolve_layout
job_layout = _core.job_layout


def _integer(name: str, value: Any, low: int, high: int = 2**31 - 1) -> int:
    """`value` if it is an int (not a bool) in [low, high]; else a typed error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _core.InvalidArgumentError(
            f"job_spec: {name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low:
        raise _core.InvalidArgumentError(f"job_spec: {name} must be >= {low}, got {value}")
    if value > high:
        raise _core.InvalidArgumentError(f"job_spec: {name} must be <= {high}, got {value}")
    return value


def _seconds(name: str, value: Any) -> float:
    """A finite, positive number of seconds (the job spec's limit is checked in C++)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _core.InvalidArgumentError(
            f"job_spec: {name} must be a number of seconds, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value <= 0 or value * 1000 >= 2**62:
        raise _core.InvalidArgumentError(
            f"job_spec: {name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _core.InvalidArgumentError(
            f"job_spec: {name} must be a non-empty string, got {value!r}")
    return value


def job_spec(model: Union[str, Layout] = "glm5-tiny", *, layers: Optional[int] = None,
             trainer_ranks: int = 1, trainer_ep: int = 1, trainer_replicas: int = 1,
             engines: Union[int, Sequence[EngineSpec]] = 1, engine_ranks: int = 1,
             engine_tp: int = 1, engine_ep: int = 1, transport: str = "auto",
             ucx_transports: Optional[str] = None, fs_root: Optional[str] = None,
             fs_keep: int = 2, fs_file_bytes: int = 4 << 30,
             fs_config: Optional[Mapping[str, Any]] = None,
             gather_threshold_bytes: int = 2 << 20, stage_bytes: int = 256 << 20,
             verify: bool = False, pipeline: bool = True, checksum: bool = False,
             staging: bool = False, flip: bool = False,
             seed: int = 1, init_timeout: float = 120.0,
             step_timeout: float = 300.0) -> JobSpec:
    """Builds and validates a job spec.

    model: a built-in layout (``weightsync.builtin_layouts()``), a layout JSON file, or a
    :class:`Layout` (e.g. from :func:`weightsync.derive_layout`), which travels in the spec
    itself, so every agent of the job gets that very layout (``spec.model`` is its name).
    trainer_ranks / trainer_ep / trainer_replicas: the trainer mesh (ranks = replicas x FSDP).
    engines: a count of identical engines (engine_ranks / engine_tp / engine_ep each) or a
    list of EngineSpec. transport: "auto" (CUDA-IPC between GPU tensors of one host, UCX
    otherwise), "ucx", "cuda_ipc", "nccl" (send/recv pairs, GPU tensors only, builds with
    NCCL) or "filesystem"; ucx_transports: UCX's transport list (UCX_TLS).
    transport="filesystem": trainers write every version as a safetensors checkpoint
    under fs_root/step_<N>/ (files of at most fs_file_bytes of tensors) and inference ranks load
    it from there (CPU tensors); after each commit the newest fs_keep step directories stay.
    fs_config: a Hugging Face config (e.g. ``inference_model.config.to_dict()``, with its
    ``quantization_config``) written as config.json into every step directory, which is then
    a checkpoint ``transformers.AutoModelForCausalLM.from_pretrained`` opens.
    stage_bytes: slot bytes per pipeline stage (0: one per conversion). pipeline=False converts
    everything, then writes everything (to measure each phase alone).
    verify: inference ranks compare every byte with the reference
    conversion of the job's *synthetic* weights (seed) -- for tests of the C++ trainer;
    leave it off when trainers push their own tensors.
    checksum: trainers checksum every write, inference ranks check what landed before the
    version may commit (a mismatch fails it everywhere, naming tensor, byte range and trainer).
    staging: inference ranks receive into a staging copy (a failed version leaves live
    untouched). flip: zero-pause updates (implies staging): ranks keep serving while the
    version lands and pause only for the copy staging -> live.

    Every argument is checked here (InvalidArgumentError naming it), and so is the whole job:
    the model must exist (NotFoundError) and the mesh and engines must be able to split it (the
    plan is built once), so a bad spec fails where it is written, not in every agent.
    """
    if isinstance(model, Layout):
        if layers is not None:
            raise _core.InvalidArgumentError(
                "job_spec: layers does not apply to a Layout (derive it with the layers you want)")
    else:
        _string("model", model)
    if layers is not None:
        _integer("layers", layers, 1)
    for name, value in (("trainer_ranks", trainer_ranks), ("trainer_ep", trainer_ep),
                        ("trainer_replicas", trainer_replicas), ("engine_ranks", engine_ranks),
                        ("engine_tp", engine_tp), ("engine_ep", engine_ep)):
        _integer(name, value, 1)
    if trainer_ranks % trainer_replicas:
        raise _core.InvalidArgumentError(
            f"trainer_replicas {trainer_replicas} must divide trainer_ranks {trainer_ranks}")
    if isinstance(engines, (list, tuple)):
        if not engines or not all(isinstance(e, EngineSpec) for e in engines):
            raise _core.InvalidArgumentError(
                f"job_spec: engines must be a count >= 1 or a non-empty list of EngineSpec, "
                f"got {engines!r}")
    else:
        _integer("engines", engines, 1)
        engines = [EngineSpec(ranks=engine_ranks, tp=engine_tp, ep=engine_ep)
                   for _ in range(engines)]
    _string("transport", transport)
    if ucx_transports is not None:
        _string("ucx_transports", ucx_transports)
    if fs_root is not None:
        _string("fs_root", fs_root)
    if transport == "filesystem" and fs_root is None:
        raise _core.InvalidArgumentError(
            "job_spec: transport='filesystem' needs fs_root, the directory of the checkpoints")
    _integer("fs_keep", fs_keep, 1, 2**20)
    _integer("fs_file_bytes", fs_file_bytes, 1, 2**63 - 1)
    if fs_config is not None:
        if not isinstance(fs_config, Mapping):
            raise _core.InvalidArgumentError(
                f"job_spec: fs_config must be a dict (a Hugging Face config), got "
                f"{type(fs_config).__name__}")
        try:
            fs_config_text = json.dumps(dict(fs_config), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise _core.InvalidArgumentError(
                f"job_spec: fs_config is not JSON-serializable: {e}") from None
    _integer("gather_threshold_bytes", gather_threshold_bytes, 0, 2**63 - 1)
    _integer("stage_bytes", stage_bytes, 0, 2**63 - 1)
    for name, value in (("verify", verify), ("pipeline", pipeline), ("checksum", checksum),
                        ("staging", staging), ("flip", flip)):
        if not isinstance(value, bool):
            raise _core.InvalidArgumentError(
                f"job_spec: {name} must be True or False, got {value!r}")
    _integer("seed", seed, 0, 2**64 - 1)
    _seconds("init_timeout", init_timeout)
    _seconds("step_timeout", step_timeout)

    spec = JobSpec()
    if isinstance(model, Layout):
        spec.model = model.name
        spec.layout = model.to_json()
    else:
        spec.model = model
        spec.layers = layers
    spec.mesh = TrainerMesh(replicas=trainer_replicas, fsdp=trainer_ranks // trainer_replicas,
                            ep=trainer_ep)
    spec.engines = list(engines)
    spec.transport = transport
    options = {"transports": ucx_transports} if ucx_transports else None
    if options and transport == "auto":
        options = {"ucx": options}  # "auto" jobs keep each backend's options under its name
    spec.transport_options = json.dumps(options) if options else ""
    if fs_root is not None:
        spec.fs_root = fs_root
    spec.fs_keep = fs_keep
    spec.fs_file_bytes = fs_file_bytes
    if fs_config is not None:
        spec.fs_config = fs_config_text
    spec.gather_threshold_bytes = gather_threshold_bytes
    spec.stage_bytes = stage_bytes
    spec.pipeline = pipeline
    spec.verify = verify
    spec.checksum = checksum
    spec.staging = staging or flip
    spec.flip = flip
    spec.seed = seed
    spec.init_timeout = init_timeout
    spec.step_timeout = step_timeout
    spec.validate()
    # The model exists and the topology can split it: the checks every agent would make.
    _core.planned_gathers(job_layout(spec), spec.mesh, spec.engines, gather_threshold_bytes)
    return spec


def _store_address(coordinator: Optional[str], store: Optional[str]) -> str:
    """The address of a job's store: `store` ("etcd://host:port[,...]" or "host:port") when
    given, else the coordinator's "host:port"."""
    address = store if store is not None else coordinator
    if not address:
        raise InvalidArgumentError("give the coordinator's host:port or store='etcd://host:port'")
    return address


def publish_job(coordinator: Union[str, Coordinator, None], job: str, spec: JobSpec, *,
                store: Optional[str] = None, job_secret: Optional[str] = None) -> None:
    """Publishes `spec` as job `job` on a coordinator (an address "host:port" or in-process),
    or in the store at `store` (e.g. "etcd://host:2379")."""
    if isinstance(coordinator, Coordinator) and store is None and job_secret is None:
        handle = coordinator.job_store(job)
    else:
        address = coordinator.address if isinstance(coordinator, Coordinator) else coordinator
        handle = _core.connect_store(_store_address(address, store), job, 30.0, job_secret or "")
    _core.publish_job(handle, spec)


def read_job(coordinator: Optional[str], job: str, timeout: float = 60.0, *,
             store: Optional[str] = None, job_secret: Optional[str] = None) -> JobSpec:
    """The spec of job `job` from the coordinator at "host:port" or the store at `store`
    (waits up to `timeout` s)."""
    return _core.read_job(_core.connect_store(_store_address(coordinator, store), job, timeout,
                                              job_secret or ""), timeout)


def find_peer(spec: JobSpec, engine: int, rank: int) -> PeerSpec:
    """The inference rank `rank` of engine `engine` in a job."""
    layout = job_layout(spec)
    for peer in _core.fleet_peers(spec.engines, layout.experts):
        if peer.engine == engine and peer.rank == rank:
            return peer
    raise _core.InvalidArgumentError(
        f"inference engine {engine} rank {rank} is not part of the job's fleet")


def reference_tensors(layout: Layout, peer: PeerSpec,
                      sources: Mapping[str, Any]) -> dict[str, Any]:
    """What `peer` must hold after a push of `sources`, by the C++ reference converter.

    sources maps every trainer tensor of the layout to its whole CPU tensor. The
    result maps every destination tensor to a CPU tensor (fp8 as uint8 where torch
    has no float8 dtype). This is the ground truth of the bit-exact tests.
    """
    held = {}
    for name, tensor in sources.items():
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        held[name] = check_tensor(name, t)
    raw = _core.reference_tensors(
        layout, peer, {n: (r.data_ptr, r.dtype, list(r.shape)) for n, r in held.items()})
    return _to_tensors(layout, peer, raw)


def synthetic_sources(layout: Layout, seed: int, version: int) -> dict[str, Any]:
    """The job's synthetic trainer tensors (seed, version), whole, as CPU tensors."""
    return {s.name: from_bytes(_core.synthetic_source(layout, s.name, seed, version), s.shape,
                               s.dtype)
            for s in layout.sources}


def reference_synthetic(layout: Layout, peer: PeerSpec, seed: int, version: int) -> dict[str, Any]:
    """What `peer` holds after the C++ trainer pushed its synthetic weights (seed, version)."""
    return _to_tensors(layout, peer, _core.reference_synthetic(layout, peer, seed, version))


def _to_tensors(layout: Layout, peer: PeerSpec, raw: Mapping[str, bytes]) -> dict[str, Any]:
    return {t.name: from_bytes(raw[t.name], t.shape, t.dtype)
            for t in _core.local_tensors(layout, peer)}
