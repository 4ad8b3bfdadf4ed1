"""CUDA tensors on both sides (runs where torch sees a GPU; skipped elsewhere): trainer processes
holding their weights on a GPU (whole, or FSDP/EP pieces whose gathers return GPU tensors) convert
them there and write into receivers whose modules live on a GPU, through the real engine,
bit-exact against the C++ reference; and every bad input is refused by name before anything is
written."""

from __future__ import annotations

import pytest
import torch

import weightsync as ws
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop, trainer_weights

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

LAST = torch.cuda.device_count() - 1 if torch.cuda.is_available() else 0
Q_B = "model.layers.0.self_attn.q_b_proj.weight"
KV_B = "model.layers.0.self_attn.kv_b_proj.weight"


def device_module(receiver: ws.WeightReceiver, gpu: int) -> torch.nn.Module:
    return nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype, device=f"cuda:{gpu}")
                          for t in receiver.expected})


def tensors_of(model: torch.nn.Module, names) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: (params[n] if n in params else model.get_buffer(n)) for n in names}


def test_cuda_tensors_two_versions(coordinator: ws.Coordinator, job_id: str) -> None:
    spec = job(coordinator, job_id)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             values="synthetic", device="cuda:0")
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = device_module(receiver, LAST)
        receiver.register(model)
        assert receiver.device == f"cuda:{LAST}"
        seen = []  # Python hooks run on the tensors' GPU and see the new bytes there
        receiver.add_hook(lambda v: seen.append(
            (v, torch.cuda.current_device(),
             int(tensors_of(model, [KV_B])[KV_B].view(torch.uint8).sum()))))
        receiver.connect()
        for version in (1, 2):
            result = receiver.update()
            assert result["committed"] and result["version"] == version
            want = ws.reference_synthetic(receiver.layout, receiver.peer, spec.seed, version)
            got = {n: t.cpu() for n, t in tensors_of(model, want).items()}
            assert assert_bit_exact(got, want, f"version {version}") > 0
            assert seen[-1][:2] == (version, LAST)
            assert seen[-1][2] == int(ws.torch_interop.raw_bytes(want[KV_B]).sum())
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2], out
        assert out["device"] == "cuda:0"  # converted on the GPU, from the tensors in place
    finally:
        stop([trainer], [receiver])


def test_sharded_cuda_trainers_gather_on_the_gpu(coordinator: ws.Coordinator,
                                                 job_id: str) -> None:
    # FSDP 2 x EP 2 trainers on GPUs holding DTensor / Shard pieces whose gathers return GPU
    # tensors; one engine of 2 EP ranks on a GPU. Threshold 0 and 4 KiB stages, as on the CPU.
    seed, versions = 11, 2
    job(coordinator, job_id, trainer_ranks=2, trainer_ep=2, engine_ranks=2, engine_ep=2,
        gather_threshold_bytes=0, stage_bytes=4096)
    trainers = [TrainerProcess(coordinator=coordinator.address, job=job_id, rank=r,
                               versions=versions, sharding="mixed", seed=seed,
                               device=f"cuda:{r % (LAST + 1)}") for r in range(2)]
    receivers = [ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=k) for k in range(2)]
    try:
        seen: list[dict] = [{}, {}]
        for receiver, into in zip(receivers, seen):
            receiver.allocate(f"cuda:{LAST}")
            receiver.add_callback(lambda r, rec=receiver, into=into: into.__setitem__(
                r["version"], {n: t.cpu() for n, t in rec.tensors.items()}))
            receiver.start()
        for receiver in receivers:
            assert receiver.wait_for_version(versions, timeout=120) == versions
        for receiver, into in zip(receivers, seen):
            for version in range(1, versions + 1):
                want = ws.reference_tensors(receiver.layout, receiver.peer,
                                            trainer_weights(receiver.layout, seed, version))
                assert_bit_exact(into[version], want, f"{receiver.peer.name} version {version}")
        for r, trainer in enumerate(trainers):
            out = trainer.result(timeout=120)
            assert out["ok"], out
            assert out["device"] == f"cuda:{r % (LAST + 1)}"
    finally:
        stop(trainers, receivers)


def test_devices_are_checked_by_name(coordinator: ws.Coordinator, job_id: str) -> None:
    job(coordinator, job_id)
    torch.cuda.set_device(0)
    sender = ws.WeightSender(coordinator.address, job_id, rank=0)
    layout = sender.layout
    tensors = {s.name: torch.zeros(tuple(s.shape), dtype=ws.torch_interop.torch_dtype(s.dtype),
                                   device="cuda:0") for s in layout.sources}
    first = layout.sources[0].name
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"'{Q_B}' is on the CPU, but this rank's tensors live on cuda:0 "
                             f"\\(set by '{first}'\\)"):
        sender.register({**tensors, Q_B: tensors[Q_B].cpu()})
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}' is not contiguous"):
        ws.WeightSender(coordinator.address, job_id, rank=0).register(
            {Q_B: torch.zeros(128, 256, dtype=torch.bfloat16, device="cuda:0").t()})
    if LAST > 0:  # a tensor on another GPU than the rank's
        with pytest.raises(ws.InvalidArgumentError,
                           match=f"'{Q_B}' is on cuda:{LAST}, but this rank's GPU is cuda:0"):
            ws.WeightSender(coordinator.address, job_id, rank=0).register(
                {Q_B: tensors[Q_B].to(f"cuda:{LAST}")})
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    dests = {t.name: ws.torch_interop.empty(t.shape, t.dtype, device="cuda:0")
             for t in receiver.expected}
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}' is on the CPU, but"):
        receiver.register({**dests, Q_B: dests[Q_B].cpu()})


@pytest.mark.parametrize("fault", ["realloc", "gather_to_cpu"])
def test_bad_cuda_sources_fail_the_push_before_anything_is_written(
        coordinator: ws.Coordinator, job_id: str, fault: str) -> None:
    # realloc: version 2's tensor was re-allocated (identity check); gather_to_cpu: a gather
    # returned a host tensor to a CUDA rank. Both refuse the push by name; receivers keep v1.
    job(coordinator, job_id, trainer_ranks=2, engine_ranks=1)
    config = dict(coordinator=coordinator.address, job=job_id, versions=2, device="cuda:0",
                  sharding="mixed")
    if fault == "realloc":
        config["realloc_at"] = 2
    else:
        config["gather_to_cpu"] = True
    trainers = [TrainerProcess(**config, rank=r) for r in range(2)]
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = device_module(receiver, LAST)
        receiver.register(model)
        if fault == "realloc":
            assert receiver.update()["committed"]
            before = {n: t.clone() for n, t in receiver.tensors.items()}
        # The receiver learns why: the aborting trainer's error, with its type.
        expected = ((ws.MismatchError, "changed since it was registered") if fault == "realloc"
                    else (ws.InvalidArgumentError, "is on the CPU, but this rank's tensors"))
        with pytest.raises(expected[0], match=f"aborted by trainer.*{expected[1]}"):
            receiver.update()
        assert receiver.version == (1 if fault == "realloc" else 0)
        if fault == "realloc":  # nothing was written into the version it holds
            for name, tensor in receiver.tensors.items():
                assert torch.equal(tensor, before[name]), name
        outs = [t.result(timeout=120) for t in trainers]
        errors = " ".join(o.get("error", "") for o in outs)
        if fault == "realloc":
            assert any(o["error_type"] == "MismatchError" for o in outs), outs
            assert "changed since it was registered" in errors
        else:
            assert any(o.get("error_type") == "InvalidArgumentError" for o in outs), outs
            assert "is on the CPU, but this rank's tensors are on cuda:0" in errors
    finally:
        stop(trainers, [receiver])


def test_flip_into_cuda_tensors(coordinator: ws.Coordinator, job_id: str) -> None:
    """A flip job into a module on a GPU: the staging copy lives on that GPU; the module holds
    the previous version byte for byte while the next lands, and the new one after finish."""
    spec = job(coordinator, job_id, flip=True)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             values="synthetic", device="cuda:0")
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = device_module(receiver, LAST)
        receiver.register(model)
        receiver.connect()
        names = [t.name for t in receiver.expected]
        held = {n: t.cpu() for n, t in tensors_of(model, names).items()}  # zeros
        for version in (1, 2):
            assert receiver.start_weight_update() == version
            while True:
                ready = receiver.update_ready
                got = {n: t.cpu() for n, t in tensors_of(model, names).items()}
                assert_bit_exact(got, held, f"while version {version} lands")
                if ready:
                    break
            result = receiver.finish_weight_update()
            assert result["committed"] and result["version"] == version
            held = ws.reference_synthetic(receiver.layout, receiver.peer, spec.seed, version)
            got = {n: t.cpu() for n, t in tensors_of(model, held).items()}
            assert assert_bit_exact(got, held, f"version {version}") > 0
        assert trainer.result()["ok"]
    finally:
        stop([trainer], [receiver])
