"""weightsync as vLLM's weight-transfer backend, against the real vLLM package (>= 0.33).

Skipped where vLLM is not importable (the Debian interpreter of the normal suite);
scripts/test_vllm.sh runs them in a venv with vLLM from PyPI. Engines are created by vLLM's
factories after vLLM's plugin loader registered the backend; trainers are separate processes
talking to a real coordinator; every destination byte is compared with the C++ reference
converter after every version.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

pytest.importorskip("vllm.distributed.weight_transfer",
                    reason="vLLM >= 0.33 is not installed (scripts/test_vllm.sh runs these)")

import torch  # noqa: E402
from vllm.distributed.weight_transfer import ParamMeta, Shard  # noqa: E402
from vllm.plugins import load_general_plugins  # noqa: E402

import weightsync as ws  # noqa: E402
from helpers import (  # noqa: E402
    HERE,
    TrainerProcess,
    assert_bit_exact,
    job,
    nested_module,
    stop,
    trainer_weights,
)
from test_vllm import dequantize  # noqa: E402
from vllm_helpers import Workers, create_engine  # noqa: E402

SEED = 11
VLLM_TRAINER = f"{HERE}/vllm_trainer_process.py"


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    load_general_plugins()  # vLLM's loader runs weightsync's entry point, as in every process


def fleet_models(spec: ws.JobSpec, engine: int = 0) -> tuple[ws.Layout, list, list]:
    """The layout, the engine's peers and one zeroed model per peer."""
    layout = ws.resolve_layout(spec.model, spec.layers)
    peers = [ws.find_peer(spec, engine, r) for r in range(spec.engines[engine].ranks)]
    models = [nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                             for t in ws.local_tensors(layout, p)}) for p in peers]
    return layout, peers, models


def held(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters()) | dict(model.named_buffers())


def snapshot(models: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{n: t.detach().clone() for n, t in held(m).items()} for m in models]


def assert_holds(layout: ws.Layout, peers: list, models: list, version: int) -> int:
    sources = trainer_weights(layout, SEED, version)
    compared = 0
    for model, peer in zip(models, peers):
        want = ws.reference_tensors(layout, peer, sources)
        compared += assert_bit_exact(held(model), want, f"{peer.name} version {version}")
    return compared


def assert_absorbed(layout: ws.Layout, peers: list, models: list, version: int) -> None:
    """The after_update hook (test_vllm.recompute_absorbed: MLA's W_UV / W_UK_T derived from
    kv_b_proj) saw this version's weights."""
    sources = trainer_weights(layout, SEED, version)
    for model, peer in zip(models, peers):
        assert model.absorbed_version == version
        want = ws.reference_tensors(layout, peer, sources)
        assert model.absorbed, "the model has kv_b_proj weights to absorb"
        for name, absorbed in model.absorbed.items():
            expected = dequantize(want[name], want[name + "_scale_inv"]).to(torch.bfloat16)
            assert torch.equal(absorbed, expected), name


def assert_unchanged(before: list, models: list) -> None:
    for old, model in zip(before, models):
        assert_bit_exact(held(model), old, "a refused call wrote into the model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmTrainer(TrainerProcess):
    """A rank of vllm_trainer_process.py (vLLM's trainer API, weightsync backend)."""

    SCRIPT = VLLM_TRAINER


# -- registration ---------------------------------------------------------------------------

def test_entry_point_registers_the_backend_in_a_fresh_process() -> None:
    code = r"""
import json, sys
from importlib.metadata import entry_points
from vllm.distributed.weight_transfer.factory import (
    WeightTransferEngineFactory as W, WeightTransferTrainerFactory as T)
out = {"before": ["weightsync" in W._registry, "weightsync" in T._registry],
       "entry_points": [e.value for e in entry_points(group="vllm.general_plugins")
                        if e.name == "weightsync"]}
from vllm.plugins import load_general_plugins, load_plugins_by_group
load_general_plugins()
out["lazy"] = "weightsync.vllm_transfer" not in sys.modules
out["worker"] = W._registry["weightsync"]().__name__
out["trainer"] = T._registry["weightsync"]().__name__
load_plugins_by_group("vllm.general_plugins")["weightsync"]()  # a second load: no error
import weightsync.vllm_plugin
weightsync.vllm_plugin.register()
out["backends"] = sorted(W._registry)
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["before"] == [False, False]
    assert out["entry_points"] == ["weightsync.vllm_plugin:register"]
    assert out["lazy"]
    assert out["worker"] == "WeightSyncWeightTransferEngine"
    assert out["trainer"] == "WeightSyncTrainerWeightTransferEngine"
    assert {"weightsync", "nccl", "ipc"} <= set(out["backends"])


def test_the_factory_creates_the_weightsync_engine() -> None:
    from weightsync.vllm_transfer import WeightSyncInitInfo, WeightSyncWeightTransferEngine
    engine = create_engine(torch.nn.Linear(2, 2))
    assert isinstance(engine, WeightSyncWeightTransferEngine)
    info = engine.parse_init_info({"coordinator": "127.0.0.1:1", "job": "j"})
    assert info == WeightSyncInitInfo("127.0.0.1:1", "j")
    assert engine.version == 0
    engine.shutdown()  # before init: nothing to release


# -- worker side against a weightsync trainer process ---------------------------------------

def test_worker_engines_receive_three_versions_from_a_trainer_process(
        coordinator: ws.Coordinator, job_id: str) -> None:
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2)
    layout, peers, models = fleet_models(spec)
    workers = Workers(models)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=3,
                             seed=SEED)
    try:
        workers.init_weight_transfer_engine({"coordinator": coordinator.address, "job": job_id,
                                             "layout_fingerprint": layout.fingerprint,
                                             "after_update": "test_vllm:recompute_absorbed"})
        assert [e.receiver.peer.name for e in workers.engines] == ["e0r0", "e0r1"]
        previous = snapshot(models)
        for version in (1, 2, 3):
            workers.start_weight_update()
            workers.update_weights({"version": version})
            workers.finish_weight_update()
            assert [e.version for e in workers.engines] == [version, version]
            assert all(e.last_result["committed"] for e in workers.engines)
            assert assert_holds(layout, peers, models, version) > 0
            assert_absorbed(layout, peers, models, version)  # the hook ran before the return
            changed = [n for n, t in held(models[0]).items()
                       if not torch.equal(t.view(torch.uint8), previous[0][n].view(torch.uint8))]
            assert len(changed) == len(previous[0]), "every tensor changes between versions"
            previous = snapshot(models)
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2, 3], out

        # A version older than the one held (or skipping ahead) is refused; nothing written.
        # (vLLM's Worker ends the update session on an error: each try starts a new one.)
        for bad, message in ((2, "version 2 is not newer than version 3"),
                             (3, "version 3 is not newer than version 3"),
                             (5, "version 5 is not the next version")):
            workers.start_weight_update()
            with pytest.raises(ws.ProtocolError, match=message):
                workers.update_weights({"version": bad})
        for bad, message in (({"version": "4"}, "version must be an int >= 1"),
                             ({"step": 4}, "Invalid update_info")):
            workers.start_weight_update()
            with pytest.raises(ValueError, match=message):
                workers.update_weights(bad)
        assert_unchanged(previous, models)

        # shutdown() releases the job without touching the model; it can join a new one.
        workers.shutdown_weight_transfer_engine()
        assert [e.version for e in workers.engines] == [0, 0]
        with pytest.raises(ValueError, match="init_weight_transfer_engine"):
            workers.start_weight_update()
        assert_unchanged(previous, models)
        job(coordinator, job_id + "-again", engine_ranks=2, engine_ep=2)
        again = TrainerProcess(coordinator=coordinator.address, job=job_id + "-again", rank=0,
                               versions=1, seed=SEED)
        workers.init_weight_transfer_engine({"coordinator": coordinator.address,
                                             "job": job_id + "-again"})
        workers.start_weight_update()
        workers.update_weights([{}, {}])  # vLLM's per-rank list form; default: the next version
        workers.finish_weight_update()
        assert again.result()["ok"]
        assert_holds(layout, peers, models, 1)
    finally:
        stop([trainer])
        workers.close()


def test_a_failed_version_fails_on_every_worker_and_writes_nothing(
        coordinator: ws.Coordinator, job_id: str) -> None:
    """The trainer refuses version 2 (its model re-allocated a tensor): update_weights raises on
    every worker, both keep version 1, and their bytes are still version 1's."""
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2)
    layout, peers, models = fleet_models(spec)
    workers = Workers(models)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             seed=SEED, realloc_at=2)
    try:
        workers.init_weight_transfer_engine({"coordinator": coordinator.address, "job": job_id})
        workers.start_weight_update()
        workers.update_weights({"version": 1})
        workers.finish_weight_update()
        assert_holds(layout, peers, models, 1)
        workers.start_weight_update()
        results = workers.collective(lambda w: w.update_weights({"version": 2}),
                                     return_exceptions=True)
        assert all(isinstance(r, ws.WeightsyncError) for r in results), results
        assert all("changed since it was registered" in str(r) for r in results), results
        assert [e.version for e in workers.engines] == [1, 1]
        assert_holds(layout, peers, models, 1)
        out = trainer.result()
        assert not out["ok"] and out["error_type"] == "MismatchError", out
    finally:
        stop([trainer])
        workers.close()


# -- trainer side through vLLM's trainer factory --------------------------------------------

def run_trainer_engine(coordinator: ws.Coordinator, job_id: str, ranks: int, source: str,
                       job_options: dict, versions: int = 3, publish: bool = True) -> tuple:
    options = dict(job_options, init_timeout=60.0, step_timeout=60.0)
    spec = ws.job_spec("glm5-tiny", **options)  # the fleet (the trainer publishes it)
    if not publish:
        ws.publish_job(coordinator, job_id, spec)
    layout, peers, models = fleet_models(spec)
    workers = Workers(models)
    address = list(workers.serve())
    dist = f"tcp://127.0.0.1:{free_port()}"
    trainers = [VllmTrainer(coordinator=coordinator.address, job=job_id, rank=r, ranks=ranks,
                            versions=versions, seed=SEED, model="glm5-tiny", source=source,
                            job_options=options, publish=publish, dist=dist, rpc=address,
                            after_update="test_vllm:recompute_absorbed")
                for r in range(ranks)]
    try:
        results = [t.result(timeout=300) for t in trainers]
    finally:
        stop(trainers)
    return workers, layout, peers, models, results


@pytest.mark.parametrize("publish", [True, False], ids=["trainer-publishes", "published"])
def test_trainer_engine_with_vllms_module_source(coordinator: ws.Coordinator, job_id: str,
                                                 publish: bool) -> None:
    workers, layout, peers, models, results = run_trainer_engine(
        coordinator, job_id, 1, "module", {"engine_ranks": 2, "engine_ep": 2}, publish=publish)
    try:
        out = results[0]
        assert out["ok"], out
        assert out["engine"] == "WeightSyncTrainerWeightTransferEngine"
        assert out["versions"] == [1, 2, 3]
        assert workers.calls == ["init"] + [c for v in (1, 2, 3) for c in
                                            ("start", f"update {{'version': {v}}}",
                                             f"finish {v}")]
        assert [e.version for e in workers.engines] == [3, 3]
        assert_holds(layout, peers, models, 3)
        assert_absorbed(layout, peers, models, 3)  # the hook came with the trainer's init info
    finally:
        workers.close()


def test_trainer_engine_maps_param_meta_shards_onto_the_mesh(coordinator: ws.Coordinator,
                                                             job_id: str) -> None:
    """4 trainer ranks whose ParamMeta describe FSDP 4 = 2 shards x EP 2: the published job's
    mesh is derived from them (nobody wrote trainer_ep), small tensors are gathered over the
    trainers' gloo group, and every version lands bit-exact."""
    workers, layout, peers, models, results = run_trainer_engine(
        coordinator, job_id, 4, "sharded", {"engine_ranks": 2, "engine_ep": 2})
    try:
        for out in results:
            assert out["ok"], out
            assert out["versions"] == [1, 2, 3]
        mesh = ws.read_job(coordinator.address, job_id).mesh
        assert (mesh.replicas, mesh.fsdp, mesh.ep) == (1, 4, 2)
        assert [e.version for e in workers.engines] == [3, 3]
        assert_holds(layout, peers, models, 3)
    finally:
        workers.close()


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("info, message", [
    ({}, "Invalid init_info"),
    ({"job": "j"}, "Invalid init_info"),
    ({"coordinator": "localhost", "job": "j"}, "coordinator must be 'host:port'"),
    ({"coordinator": "127.0.0.1:1", "job": ""}, "job must be a non-empty string"),
    ({"coordinator": "127.0.0.1:1", "job": "j", "engine": -1}, "engine must be an int >= 0"),
    ({"coordinator": "127.0.0.1:1", "job": "j", "rank": "0"}, "rank must be an int >= 0"),
    ({"coordinator": "127.0.0.1:1", "job": "j", "connect_timeout": 0}, "connect_timeout"),
    ({"coordinator": "127.0.0.1:1", "job": "j", "master_port": 1}, "Invalid init_info"),
])
def test_wrong_init_info_is_refused(info: dict, message: str) -> None:
    engine = create_engine(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=message):
        engine.parse_init_info(info)


def test_update_before_init_is_refused_and_writes_nothing() -> None:
    model = torch.nn.Linear(2, 2)
    before = snapshot([model])
    engine = create_engine(model)
    for call in (engine.start_weight_update, lambda: engine.update_weights({"version": 1}),
                 engine.finish_weight_update):
        with pytest.raises(ValueError, match="init_weight_transfer_engine.. must be called"):
            call()
    assert_unchanged(before, [model])


def test_a_model_that_does_not_match_the_layout_is_refused(coordinator: ws.Coordinator,
                                                          job_id: str) -> None:
    spec = job(coordinator, job_id)
    layout, peers, models = fleet_models(spec)
    tensors = dict(held(models[0]))
    dropped = sorted(tensors)[:2]
    for name in dropped:
        del tensors[name]
    tensors["model.extra_head.weight"] = torch.zeros(4, 4)
    model = nested_module(tensors)
    before = snapshot([model])
    engine = create_engine(model)
    with pytest.raises(ws.MismatchError) as info:
        engine.init_transfer_engine(engine.parse_init_info(
            {"coordinator": coordinator.address, "job": job_id}))
    text = str(info.value)
    assert "does not match layout 'glm5-tiny'" in text
    assert "2 of its" in text and all(n in text for n in dropped)
    assert "1 model parameters are not in the layout (first: model.extra_head.weight)" in text
    assert engine.receiver is None
    assert_unchanged(before, [model])

    # A tensor of the wrong shape is named too.
    name = sorted(held(models[0]))[0]
    wrong = dict(held(models[0]))
    wrong[name] = torch.zeros(3, dtype=wrong[name].dtype)
    engine = create_engine(nested_module(wrong))
    job(coordinator, job_id + "-shape")
    with pytest.raises(ws.MismatchError, match=f"'{name}' is \\[3\\]"):
        engine.init_transfer_engine(engine.parse_init_info(
            {"coordinator": coordinator.address, "job": job_id + "-shape"}))


def test_a_trainer_on_another_layout_is_refused(coordinator: ws.Coordinator,
                                                job_id: str) -> None:
    spec = job(coordinator, job_id)
    layout, _, models = fleet_models(spec)
    other = ws.resolve_layout("glm5-tiny", 1).fingerprint
    assert other != layout.fingerprint
    before = snapshot(models)
    engine = create_engine(models[0])
    with pytest.raises(ws.MismatchError, match=f"fingerprint {other}.*fingerprint "
                                               f"{layout.fingerprint}"):
        engine.init_transfer_engine(engine.parse_init_info(
            {"coordinator": coordinator.address, "job": job_id, "layout_fingerprint": other}))
    assert engine.receiver is None
    assert_unchanged(before, models)


def test_an_after_update_hook_that_cannot_be_loaded_is_refused(coordinator: ws.Coordinator,
                                                               job_id: str) -> None:
    spec = job(coordinator, job_id)
    _, _, models = fleet_models(spec)
    engine = create_engine(models[0])
    for hook, message in (("test_vllm:no_such_hook", "cannot be loaded in this worker"),
                          ("no_such_module:hook", "cannot be loaded in this worker"),
                          ("test_vllm:KV_B", "is not callable")):
        with pytest.raises(ws.InvalidArgumentError, match=f"after_update '{hook}' {message}"):
            engine.init_transfer_engine(engine.parse_init_info(
                {"coordinator": coordinator.address, "job": job_id, "after_update": hook}))
        assert engine.receiver is None


def test_a_vllm_of_another_shape_than_the_job_is_refused(coordinator: ws.Coordinator,
                                                         job_id: str) -> None:
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2)
    _, _, models = fleet_models(spec)
    engine = create_engine(models[0])  # TP 1, no expert parallelism
    with pytest.raises(ws.MismatchError, match="2 ranks .TP 1, EP 2., but this vLLM runs "
                                               "tensor_parallel_size=1, expert parallel off"):
        engine.init_transfer_engine(engine.parse_init_info(
            {"coordinator": coordinator.address, "job": job_id}))


# -- bad trainer input ----------------------------------------------------------------------

class MetaSource:
    """A WeightSource stand-in for refusals that happen before any tensor is read."""

    def __init__(self, metas: list) -> None:
        self.metadata = metas

    def implements_iter_local(self) -> bool:
        return True

    def iter_local(self):
        raise AssertionError("refused before reading tensors")


def layout_metas(**kw) -> list:
    layout = ws.resolve_layout("glm5-tiny")
    return [ParamMeta(s.name, torch.bfloat16 if s.dtype == "bf16" else torch.float32,
                      tuple(s.shape), **kw) for s in layout.sources]


def trainer_init(source, coordinator: str = "127.0.0.1:1", job_id: str = "j", **info):
    """Trainer rank 0 through vLLM's trainer factory (refusals come before any client call)."""
    from vllm.distributed.weight_transfer import WeightTransferTrainerFactory

    from weightsync.vllm_trainer import WeightSyncTrainerInitInfo
    info.setdefault("model", "glm5-tiny")
    return WeightTransferTrainerFactory.trainer_init(
        WeightSyncTrainerInitInfo(coordinator, job_id, rank=0, **info), client=None,
        source=source)


def test_trainer_refusals() -> None:
    from weightsync.vllm_trainer import WeightSyncTrainerInitInfo
    with pytest.raises(ValueError, match="must not set trainer_ep"):
        WeightSyncTrainerInitInfo("127.0.0.1:1", "j", rank=0, model="glm5-tiny",
                                  job_options={"trainer_ep": 2})
    with pytest.raises(ValueError, match="coordinator must be 'host:port'"):
        WeightSyncTrainerInitInfo("nowhere", "j", rank=0)
    with pytest.raises(ValueError, match="needs a WeightSource"):
        trainer_init(None)

    metas = layout_metas()
    with pytest.raises(ws.MismatchError, match=f"1 layout tensors are missing from its metadata "
                                               f"\\(first: {metas[0].name}\\)"):
        trainer_init(MetaSource(metas[1:]))
    wrong = [ParamMeta(m.name, torch.float16, m.shape) for m in metas]
    with pytest.raises(ws.MismatchError, match="differs from layout 'glm5-tiny'"):
        trainer_init(MetaSource(wrong))
    by_cols = [ParamMeta(m.name, m.dtype, m.shape, owners=(0, 1), placements=(Shard(1),))
               if len(m.shape) == 2 else m for m in metas]
    with pytest.raises(ws.UnsupportedError, match="shards dim 1"):
        trainer_init(MetaSource(by_cols), trainer_ranks=2)
    stage = layout_metas(owners=(0,))
    with pytest.raises(ws.MismatchError, match="owned by trainer ranks \\(0,\\) only"):
        trainer_init(MetaSource(stage), trainer_ranks=2)


def test_trainer_refuses_placements_that_disagree_with_a_published_mesh(
        coordinator: ws.Coordinator, job_id: str) -> None:
    job(coordinator, job_id, trainer_ranks=2)  # FSDP 2: rank 0 owns the first half of the rows
    metas = layout_metas(owners=(1, 0), placements=(Shard(0),))  # ... but holds the second
    source = MetaSource(metas)
    with pytest.raises(ws.MismatchError, match="disagree with the job's trainer mesh: .* trainer "
                                               "rank 0 holds \\[\\d+, \\d+\\)"):
        trainer_init(source, coordinator.address, job_id, model=None)
