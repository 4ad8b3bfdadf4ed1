"""A version is all or nothing across the inference ranks of an engine: a post-update hook that
fails on one rank fails the version on every rank, and no rank serves it (reproduction of the
"hook split", where the other rank had already resumed on the failed version)."""

from __future__ import annotations

import json
import threading

import pytest

import weightsync as ws
from helpers import TrainerProcess, job, stop


def test_a_failing_hook_on_one_rank_fails_the_version_everywhere(coordinator: ws.Coordinator,
                                                                 job_id: str) -> None:
    job(coordinator, job_id, engine_ranks=2, engine_ep=2)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=3,
                             seed=3)
    good = ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=0)
    bad = ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=1)
    try:
        good.allocate()
        bad.allocate()

        def hook(version: int) -> None:
            if version == 2:
                raise RuntimeError("process_weights_after_loading failed at version 2")

        bad.add_hook(hook)
        good_hooks: list[int] = []
        good.add_hook(good_hooks.append)
        connecting = threading.Thread(target=good.connect)
        connecting.start()
        bad.connect()
        connecting.join()
        good.start()
        assert bad.update()["committed"]
        assert good.wait_for_version(1, timeout=30) == 1
        with pytest.raises(ws.WeightsyncError, match="process_weights_after_loading failed"):
            bad.update()
        # The other rank fails the same version, with the same cause, and never serves it.
        with pytest.raises(ws.WeightsyncError, match="aborted by inference-e0r1"):
            good.wait_for_version(2, timeout=30)
        assert good.version == 1 and bad.version == 1
        store = ws._core.connect_store(coordinator.address, job_id, 10.0)
        assert store.list("v/2/resumed/") == []
        outcome = json.loads(store.get("v/2/outcome"))
        assert not outcome["commit"] and outcome["by"] == "inference-e0r1"
        for peer in ("e0r0", "e0r1"):
            aborted = json.loads(store.get(f"v/2/aborted/inference-{peer}"))
            # Written in place (no staging): the live weights hold version 2's bytes, so
            # neither rank goes back to serving; both stay paused.
            assert aborted["held"] == 1 and not aborted["serving"], (peer, aborted)
        # The good rank applied version 2 and then learned that it failed, or learned it first.
        assert good_hooks in ([1], [1, 2])
        out = trainer.result()
        assert out["versions"] == [1] and not out["ok"]
        assert "process_weights_after_loading failed" in out["error"]
    finally:
        stop([trainer], [good, bad])
