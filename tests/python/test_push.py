"""Named tensors pushed between Python processes through the real engine: a coordinator over
TCP, trainer processes, real UCX writes into the receivers' torch tensors, checked byte for byte
against the C++ reference converter, over several versions with new values in between."""

from __future__ import annotations

import torch

import weightsync as ws
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop, trainer_weights


def snapshot(receiver: ws.WeightReceiver, into: dict) -> None:
    """Keeps a copy of each version as it is committed (before the next one may start)."""
    receiver.add_callback(lambda result: into.__setitem__(
        result["version"], {n: t.clone() for n, t in receiver.tensors.items()}))


def test_plain_tensors_two_versions_into_a_module(coordinator: ws.Coordinator, job_id: str) -> None:
    # The trainer pushes the job's synthetic weights, so the C++ receiver verifies too.
    spec = job(coordinator, job_id, verify=True)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=3,
                             values="synthetic", realloc_at=3)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                               for t in receiver.expected})
        receiver.register(model)
        hooked = []
        receiver.add_hook(lambda version: hooked.append(
            (version, float(model.get_parameter("lm_head.weight").float().abs().sum()))))
        receiver.connect()
        for version in (1, 2):
            result = receiver.update()
            assert result["committed"] and result["version"] == version
            assert result["verified"] and result["mismatched_bytes"] == 0
            want = ws.reference_synthetic(receiver.layout, receiver.peer, spec.seed, version)
            got = {name: model.get_parameter(name) if name in dict(model.named_parameters())
                   else model.get_buffer(name) for name in want}
            assert assert_bit_exact(got, want, f"version {version}") == result["checked_bytes"]
        # The hooks ran after each version landed: they saw the new weights.
        assert [v for v, _ in hooked] == [1, 2] and hooked[0][1] != hooked[1][1] != 0
        # Version 3: the trainer re-allocated a parameter; it refuses to push and every
        # receiver learns why instead of waiting out its timeout.
        try:
            receiver.update()
            raise AssertionError("version 3 should have failed")
        except ws.MismatchError as e:  # the trainer's own cause, named as such
            assert "aborted by trainer0" in str(e) and "changed since it was registered" in str(e)
        assert receiver.version == 2
        out = trainer.result()
        assert out["versions"] == [1, 2] and not out["ok"]
        assert out["error_type"] == "MismatchError", out
        assert all(m["writes"] > 0 and m["wire_bytes"] > 0 for m in out["metrics"])
    finally:
        stop([trainer], [receiver])


def test_dtensor_shards_fsdp_times_ep_into_an_ep_engine(coordinator: ws.Coordinator,
                                                       job_id: str) -> None:
    # FSDP 2 x EP 2 trainer ranks holding DTensor / Shard pieces (and some whole tensors);
    # one engine of 2 EP ranks. Threshold 0: large enough sources go per shard, the rest is
    # gathered through full_tensor(). 4 KiB pipeline stages: experts and block rows split.
    seed, versions = 11, 2
    job(coordinator, job_id, trainer_ranks=2, trainer_ep=2, engine_ranks=2, engine_ep=2,
        gather_threshold_bytes=0, stage_bytes=4096)
    trainers = [TrainerProcess(coordinator=coordinator.address, job=job_id, rank=r,
                               versions=versions, sharding="mixed", seed=seed) for r in range(2)]
    receivers = [ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=k) for k in range(2)]
    try:
        seen: list[dict] = [{}, {}]
        for receiver, into in zip(receivers, seen):
            receiver.allocate()
            snapshot(receiver, into)
            receiver.start()
        for receiver in receivers:
            assert receiver.wait_for_version(versions, timeout=60) == versions
        for receiver, into in zip(receivers, seen):
            assert len(receiver.peer.experts) == 4
            for version in range(1, versions + 1):
                want = ws.reference_tensors(receiver.layout, receiver.peer,
                                            trainer_weights(receiver.layout, seed, version))
                assert_bit_exact(into[version], want, f"{receiver.peer.name} version {version}")
            assert not torch.equal(into[1]["lm_head.weight"], into[2]["lm_head.weight"])
        for trainer in trainers:
            out = trainer.result()
            assert out["ok"], out
            assert out["versions"] == list(range(1, versions + 1))
    finally:
        stop(trainers, receivers)
