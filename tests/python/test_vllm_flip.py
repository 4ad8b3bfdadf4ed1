"""Zero-pause updates through vLLM's weight-transfer API (flip jobs), against the real vLLM
package (>= 0.33; skipped without it, scripts/test_vllm.sh runs them): update_weights starts
the version and returns with the model untouched, the model keeps the previous version's bytes
while the version lands, and finish_weight_update flips it in; a failed version raises from
finish with the model on the previous version; the weightsync trainer engine drives it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("vllm.distributed.weight_transfer",
                    reason="vLLM >= 0.33 is not installed (scripts/test_vllm.sh runs these)")

from vllm.plugins import load_general_plugins  # noqa: E402

import weightsync as ws  # noqa: E402
from helpers import TrainerProcess, job, stop  # noqa: E402
from test_vllm_transfer import (  # noqa: E402
    SEED,
    assert_absorbed,
    assert_holds,
    assert_unchanged,
    fleet_models,
    run_trainer_engine,
    snapshot,
)
from vllm_helpers import Workers  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    load_general_plugins()


def land(workers: Workers, before: list) -> None:
    """Reads the models, as generation does, until the started version landed on every worker;
    every read holds `before` exactly."""
    deadline = time.monotonic() + 120  # a hang guard, not a measurement
    while True:
        ready = all(e.receiver.update_ready for e in workers.engines)
        assert_unchanged(before, workers.models)
        if ready:
            return
        assert time.monotonic() < deadline, "the version never landed"


def test_flip_workers_keep_the_previous_version_until_finish(coordinator: ws.Coordinator,
                                                             job_id: str) -> None:
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2, flip=True)
    layout, peers, models = fleet_models(spec)
    workers = Workers(models)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=3,
                             seed=SEED)
    try:
        workers.init_weight_transfer_engine({"coordinator": coordinator.address, "job": job_id,
                                             "after_update": "test_vllm:recompute_absorbed"})
        assert all(e.defers_processing for e in workers.engines)
        for version in (1, 2, 3):
            before = snapshot(models)
            workers.start_weight_update()
            workers.update_weights({"version": version})  # returns with the version started
            assert [e.receiver.pending_version for e in workers.engines] == [version, version]
            land(workers, before)
            assert [e.version for e in workers.engines] == [version - 1, version - 1]
            workers.finish_weight_update()
            assert [e.version for e in workers.engines] == [version, version]
            for e in workers.engines:
                assert e.last_result["committed"] and e.last_result["paused_seconds"] >= 0
                assert e.receiver.pending_version is None
            assert assert_holds(layout, peers, models, version) > 0
            assert_absorbed(layout, peers, models, version)  # the hook ran inside finish
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2, 3], out
    finally:
        stop([trainer])
        workers.close()


def test_a_failed_flip_raises_from_finish_and_keeps_the_previous_version(
        coordinator: ws.Coordinator, job_id: str) -> None:
    """The trainer refuses version 2 (it re-allocated a tensor): finish_weight_update raises on
    every worker, the models hold version 1, and a second finish ends vLLM's update session so
    that the workers can take the next version."""
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2, flip=True)
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
        before = snapshot(models)
        workers.start_weight_update()
        workers.update_weights({"version": 2})
        land(workers, before)
        results = workers.collective(lambda w: w.finish_weight_update(), return_exceptions=True)
        assert all(isinstance(r, ws.MismatchError) for r in results), results
        assert all("changed since it was registered" in str(r) for r in results), results
        assert [e.version for e in workers.engines] == [1, 1]
        assert_holds(layout, peers, models, 1)
        assert all(w._weight_update_active for w in workers.workers)  # vLLM keeps it open
        workers.finish_weight_update()  # nothing pending: closes vLLM's session
        assert not any(w._weight_update_active for w in workers.workers)
        workers.start_weight_update()  # the next version could start
        out = trainer.result()
        assert not out["ok"] and out["error_type"] == "MismatchError", out
    finally:
        stop([trainer])
        workers.close()


def test_trainer_engine_drives_a_flip_job(coordinator: ws.Coordinator, job_id: str) -> None:
    workers, layout, peers, models, results = run_trainer_engine(
        coordinator, job_id, 1, "module", {"engine_ranks": 2, "engine_ep": 2, "flip": True})
    try:
        out = results[0]
        assert out["ok"], (out.get("error_type"), out.get("error"), out.get("stderr"))
        assert out["versions"] == [1, 2, 3]
        assert ws.read_job(coordinator.address, job_id).flip
        assert workers.calls == ["init"] + [c for v in (1, 2, 3) for c in
                                            ("start", f"update {{'version': {v}}}",
                                             f"finish {v}")]
        assert [e.version for e in workers.engines] == [3, 3]
        assert all(e.last_result["committed"] for e in workers.engines)
        assert_holds(layout, peers, models, 3)
        assert_absorbed(layout, peers, models, 3)
    finally:
        workers.close()
