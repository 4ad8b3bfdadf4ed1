"""Zero-pause updates from Python (flip jobs): start_weight_update() receives a version into the
staging copy while the caller keeps reading its live tensors, which hold the previous version
byte for byte until finish_weight_update() returns; then they hold the new one byte for byte.
A version that fails raises from finish_weight_update() with live untouched; misuse is refused.
Real trainer processes, a real coordinator, every byte compared with the C++ reference
converter."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import weightsync as ws
from helpers import TrainerProcess, assert_bit_exact, job, stop, trainer_weights

SEED = 5


def weightsync_bin() -> str:
    path = os.environ.get("WEIGHTSYNC_BIN") or str(Path(ws.__file__).parents[2] / "weightsync")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no weightsync binary at {path} (set WEIGHTSYNC_BIN)")
    return path


def connect_all(receivers: list[ws.WeightReceiver]) -> None:
    threads = [threading.Thread(target=r.connect) for r in receivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r._agent is not None for r in receivers), "a receiver did not connect"


def on_all(receivers: list[ws.WeightReceiver], fn: Callable[[ws.WeightReceiver], Any]) -> list:
    """fn(receiver) for every rank at once (a version needs every rank); raises the first
    error."""
    results: list[Any] = [None] * len(receivers)

    def run(i: int) -> None:
        try:
            results[i] = fn(receivers[i])
        except BaseException as e:  # noqa: BLE001 - re-raised below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(receivers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a receiver call hung"
    return results


def read_until_ready(receivers: list[ws.WeightReceiver], want: list[dict], what: str) -> int:
    """Reads every rank's live tensors, as a generation loop does, until every rank's started
    version landed everywhere (or ended); every read must be `want` byte for byte. Returns the
    reads."""
    reads = 0
    deadline = time.monotonic() + 120  # a hang guard, not a measurement
    while True:
        ready = all(r.update_ready for r in receivers)  # before the read: the read comes after
        for r, expected in zip(receivers, want):
            assert_bit_exact(r.tensors, expected, f"{r.peer.name} {what}")
        reads += 1
        if ready:
            return reads
        assert time.monotonic() < deadline, f"the version never landed ({what})"


def test_generation_reads_the_previous_version_until_finish(coordinator: ws.Coordinator,
                                                            job_id: str) -> None:
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2, flip=True)
    layout = ws.job_layout(spec)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=3,
                             seed=SEED)
    receivers = [ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=r)
                 for r in range(2)]
    hooks: list[list[int]] = [[], []]
    try:
        for r, seen in zip(receivers, hooks):
            r.allocate()
            r.add_hook(seen.append)
        connect_all(receivers)

        def reference(version: int) -> list[dict]:
            sources = trainer_weights(layout, SEED, version)
            return [ws.reference_tensors(layout, r.peer, sources) for r in receivers]

        # update() works in a flip job too: one version, start to end.
        assert all(res["committed"] for res in on_all(receivers, lambda r: r.update()))
        held = reference(1)
        for r, expected in zip(receivers, held):
            assert_bit_exact(r.tensors, expected, f"{r.peer.name} version 1")
        for version in (2, 3):
            assert [r.start_weight_update() for r in receivers] == [version, version]
            assert [r.pending_version for r in receivers] == [version, version]
            reads = read_until_ready(receivers, held, f"while version {version} lands")
            assert reads >= 1
            # Landed everywhere: only the flip is left, and it waits for the callers.
            assert all(r.version == version - 1 for r in receivers)
            assert [seen[-1] for seen in hooks] == [version - 1, version - 1]
            for r, expected in zip(receivers, held):
                assert_bit_exact(r.tensors, expected, f"{r.peer.name} landed, before finish")
            results = on_all(receivers, lambda r: r.finish_weight_update())
            held = reference(version)
            for r, res, expected, seen in zip(receivers, results, held, hooks):
                assert not isinstance(res, BaseException), res
                assert res["version"] == version and res["committed"]
                assert r.version == version and r.pending_version is None
                assert seen[-1] == version  # the hook ran inside finish, on the new bytes
                for key in ("paused_seconds", "flip_seconds", "serving_seconds",
                            "wait_seconds", "hook_seconds"):
                    assert res[key] >= 0, (key, res)
                assert_bit_exact(r.tensors, expected, f"{r.peer.name} version {version}")
                assert r.last_result is res
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2, 3], out
        assert hooks == [[1, 2, 3], [1, 2, 3]]
    finally:
        stop([trainer], receivers)


def test_a_trainer_killed_while_writing_fails_finish_and_live_keeps_the_previous_version(
        coordinator: ws.Coordinator, job_id: str) -> None:
    """The C++ trainer kills itself after half of version 2's writes: bytes of version 2 sit
    in staging, the version fails, finish_weight_update() raises PeerLostError, and the live
    tensors, read throughout, held version 1 byte for byte and still do."""
    spec = ws.job_spec(engine_ranks=1, flip=True, init_timeout=30.0, step_timeout=30.0)
    spec.steps = 2
    ws.publish_job(coordinator, job_id, spec)
    layout = ws.job_layout(spec)
    trainer = subprocess.Popen(
        [weightsync_bin(), "trainer", "--coordinator", coordinator.address, "--job", job_id,
         "--rank", "0", "--fault", "writing@2:kill"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        receiver.allocate()
        receiver.connect()
        assert receiver.start_weight_update() == 1
        assert receiver.finish_weight_update()["committed"]
        v1 = ws.reference_synthetic(layout, receiver.peer, spec.seed, 1)
        assert_bit_exact(receiver.tensors, v1, "version 1")
        assert receiver.start_weight_update() == 2
        read_until_ready([receiver], [v1], "while version 2 fails")
        with pytest.raises(ws.PeerLostError, match="trainer0"):
            receiver.finish_weight_update()
        assert receiver.version == 1 and receiver.pending_version is None
        assert_bit_exact(receiver.tensors, v1, "after the failed version 2")
        assert trainer.wait(timeout=60) == -9  # it killed itself, as injected
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
        receiver.close(timeout=5)


def test_a_finish_after_the_step_timeout_never_flips_and_live_keeps_the_previous_version(
        coordinator: ws.Coordinator, job_id: str) -> None:
    """The caller calls finish_weight_update() for version 2 only after the step timeout: the
    trainer gave up on the version meanwhile. The flip must not happen: finish raises, the live
    tensors hold version 1 byte for byte, and the rank says it serves version 1, intact."""
    step_timeout = 3.0
    spec = job(coordinator, job_id, flip=True, step_timeout=step_timeout)
    layout = ws.job_layout(spec)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             seed=SEED)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        receiver.allocate()
        receiver.connect()
        assert receiver.update()["committed"]
        v1 = ws.reference_tensors(layout, receiver.peer, trainer_weights(layout, SEED, 1))
        assert_bit_exact(receiver.tensors, v1, "version 1")
        started = time.monotonic()
        assert receiver.start_weight_update() == 2
        read_until_ready([receiver], [v1], "while version 2 lands")
        time.sleep(max(0.0, started + step_timeout + 1.0 - time.monotonic()))
        with pytest.raises(ws.WeightsyncError, match="step timeout|aborted"):
            receiver.finish_weight_update()
        assert receiver.version == 1 and receiver.pending_version is None
        assert_bit_exact(receiver.tensors, v1, "after the late finish of version 2")
        store = ws._core.connect_store(coordinator.address, job_id, 10.0)
        aborted = json.loads(store.get(f"v/2/aborted/inference-{receiver.peer.name}"))
        assert aborted["intact"] and aborted["serving"] and aborted["held"] == 1, aborted
        assert not trainer.result()["ok"]
    finally:
        stop([trainer], [receiver])


def test_without_flip_start_weight_update_is_refused(coordinator: ws.Coordinator,
                                                     job_id: str) -> None:
    job(coordinator, job_id, staging=True)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        receiver.allocate()
        with pytest.raises(ws.InvalidArgumentError, match=r"needs a flip job.*use update\(\)"):
            receiver.start_weight_update()
        with pytest.raises(ws.InvalidArgumentError, match="without a start_weight_update"):
            receiver.finish_weight_update()
        assert receiver.pending_version is None and not receiver.update_ready
    finally:
        receiver.close()


def test_misuse_while_a_version_is_pending_is_refused_and_loses_nothing(
        coordinator: ws.Coordinator, job_id: str) -> None:
    spec = job(coordinator, job_id, flip=True)
    layout = ws.job_layout(spec)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=1,
                             seed=SEED)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        receiver.allocate()
        with pytest.raises(ws.InvalidArgumentError, match="without a start_weight_update"):
            receiver.finish_weight_update()
        assert receiver.start_weight_update() == 1
        for call, what in ((receiver.start_weight_update, "start_weight_update()"),
                           (receiver.update, "update()"),
                           (lambda: receiver.wait_for_version(1), "wait_for_version()"),
                           (receiver.start, "start()"),
                           (receiver.close, "close()")):
            with pytest.raises(ws.InvalidArgumentError,
                               match=rf"{what.replace('(', r'[(]').replace(')', r'[)]')} while "
                                     "version 1 started by start_weight_update"):
                call()
        # A finish that gives up before the flip began leaves live untouched and readable.
        with pytest.raises(ws.TimeoutError, match="may be read until"):
            receiver.finish_weight_update(timeout=0)
        zeros = {n: t.clone() for n, t in receiver.tensors.items()}
        read_until_ready([receiver], [zeros], "version 1 pending after a timed-out finish")
        result = receiver.finish_weight_update()
        assert result["committed"] and receiver.version == 1
        sources = trainer_weights(layout, SEED, 1)
        assert_bit_exact(receiver.tensors, ws.reference_tensors(layout, receiver.peer, sources),
                         "version 1")
        with pytest.raises(ws.InvalidArgumentError, match="without a start_weight_update"):
            receiver.finish_weight_update()
        assert trainer.result()["ok"]
    finally:
        stop([trainer], [receiver])


def test_staging_the_callers_tensors_trades_a_failed_version_back(coordinator: ws.Coordinator,
                                                                  job_id: str) -> None:
    """Staging without flip, for tensors the caller registered: a hook that fails on one rank
    after both applied version 2 fails it everywhere, and both ranks trade staging back: their
    tensors hold version 1 byte for byte and they serve it again."""
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2, staging=True)
    layout = ws.job_layout(spec)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             seed=SEED)
    receivers = [ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=r)
                 for r in range(2)]
    try:
        for r in receivers:
            r.allocate()

        def hook(version: int) -> None:
            if version == 2:
                raise RuntimeError("derived weights failed at version 2")

        receivers[1].add_hook(hook)
        connect_all(receivers)
        assert all(res["committed"] for res in on_all(receivers, lambda r: r.update()))
        sources = trainer_weights(layout, SEED, 1)
        v1 = [ws.reference_tensors(layout, r.peer, sources) for r in receivers]
        results = on_all(receivers, lambda r: r.update())
        assert all(isinstance(res, ws.WeightsyncError) for res in results), results
        assert all("derived weights failed" in str(res) for res in results), results
        store = ws._core.connect_store(coordinator.address, job_id, 10.0)
        for r, expected in zip(receivers, v1):
            assert r.version == 1
            assert_bit_exact(r.tensors, expected, f"{r.peer.name} after the failed version 2")
            aborted = json.loads(store.get(f"v/2/aborted/inference-{r.peer.name}"))
            assert aborted["intact"] and aborted["serving"], aborted
        assert not trainer.result()["ok"]
    finally:
        stop([trainer], receivers)
