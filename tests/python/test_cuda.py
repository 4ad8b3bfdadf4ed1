"""CUDA tensors on both sides (runs where torch sees a GPU; skipped elsewhere): a trainer process
holding its weights on a GPU pushes into a receiver whose module lives on a GPU, through the real
engine and a CUDA-capable UCX, bit-exact against the C++ reference for two versions."""

from __future__ import annotations

import pytest
import torch

import weightsync as ws
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_cuda_tensors_two_versions(coordinator: ws.Coordinator, job_id: str) -> None:
    spec = job(coordinator, job_id, verify=False)
    receiver_gpu = torch.cuda.device_count() - 1
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             values="synthetic", device="cuda:0")
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype,
                                                              device=f"cuda:{receiver_gpu}")
                               for t in receiver.expected})
        receiver.register(model)
        receiver.connect()
        for version in (1, 2):
            result = receiver.update()
            assert result["committed"] and result["version"] == version
            want = ws.reference_synthetic(receiver.layout, receiver.peer, spec.seed, version)
            tensors = dict(model.named_parameters())
            got = {name: (tensors[name] if name in tensors else model.get_buffer(name)).cpu()
                   for name in want}
            assert assert_bit_exact(got, want, f"version {version}") > 0
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2], out
    finally:
        stop([trainer], [receiver])
