"""transport="filesystem" from Python: a trainer process writes each version as a safetensors
checkpoint, a WeightReceiver loads it into a module's tensors (checked byte for byte), and the
directory is a valid Hugging Face checkpoint: the `safetensors` library reads every tensor with
its name, dtype and shape, and its bytes equal the C++ reference conversion of whole tensors."""

from __future__ import annotations

import json
import os

import pytest
import torch

import weightsync as ws
from weightsync import _core
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop

safetensors = pytest.importorskip("safetensors")
from safetensors import safe_open  # noqa: E402

DTYPES = {"bf16": "BF16", "fp32": "F32", "fp8_e4m3": "F8_E4M3"}
TORCH = {"BF16": torch.bfloat16, "F32": torch.float32}


def test_checkpoint_push_and_safetensors_interop(coordinator: ws.Coordinator, job_id: str,
                                                 tmp_path) -> None:
    root = str(tmp_path / "ckpt")
    versions = 3
    spec = job(coordinator, job_id, model="glm5-tiny", transport="filesystem", fs_root=root,
               fs_keep=2, fs_file_bytes=400_000, verify=True)
    assert spec.transport == "filesystem" and spec.fs_root == root and spec.fs_keep == 2
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0,
                             versions=versions, values="synthetic")
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    try:
        model = nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                               for t in receiver.expected})
        receiver.register(model)
        receiver.connect()
        for version in range(1, versions + 1):
            result = receiver.update()
            assert result["committed"] and result["version"] == version
            assert result["verified"] and result["mismatched_bytes"] == 0
            want = ws.reference_synthetic(receiver.layout, receiver.peer, spec.seed, version)
            got = dict(model.named_parameters()) | dict(model.named_buffers())
            assert assert_bit_exact({n: got[n] for n in want}, want, f"v{version}") > 0
        assert trainer.result()["versions"] == list(range(1, versions + 1))
    finally:
        stop([trainer], [receiver])

    # Retention: the newest two versions stay.
    assert sorted(os.listdir(root)) == ["step_2", "step_3"]
    step = os.path.join(root, "step_3")
    layout = ws.job_layout(spec)
    whole = ws.find_peer(ws.job_spec("glm5-tiny", engines=1, engine_ranks=1), 0, 0)
    reference = _core.reference_synthetic(layout, whole, spec.seed, versions)
    with open(os.path.join(step, "model.safetensors.index.json")) as f:
        index = json.load(f)
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and all(name.endswith(f"-of-{len(files):05d}.safetensors")
                                  for name in files)
    assert set(os.listdir(step)) == set(files) | {"model.safetensors.index.json",
                                                   "weightsync-manifest.json"}
    seen = {}
    for name in files:
        with open(os.path.join(step, name), "rb") as f:
            for tensor, info in safetensors.deserialize(f.read()):
                assert index["weight_map"][tensor] == name
                seen[tensor] = info
        # Through a framework too (torch 1.13 has no float8: those stay raw above).
        with safe_open(os.path.join(step, name), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            for tensor in f.keys():
                if seen[tensor]["dtype"] in TORCH:
                    t = f.get_tensor(tensor)
                    assert t.dtype == TORCH[seen[tensor]["dtype"]]
                    assert list(t.shape) == seen[tensor]["shape"]
                    assert ws.torch_interop.raw_bytes(t).numpy().tobytes() == reference[tensor]
    assert set(seen) == {d.name for d in layout.dests}
    assert index["metadata"]["total_size"] == sum(len(b) for b in reference.values())
    for d in layout.dests:
        info = seen[d.name]
        assert info["dtype"] == DTYPES[d.dtype], d.name
        assert info["shape"] == list(d.shape), d.name
        assert bytes(info["data"]) == reference[d.name], f"{d.name}: bytes differ"


def test_job_spec_refuses_a_filesystem_job_without_a_root() -> None:
    with pytest.raises(ws.InvalidArgumentError, match="fs_root"):
        ws.job_spec("glm5-tiny", transport="filesystem")
    with pytest.raises(ws.InvalidArgumentError, match="fs_keep"):
        ws.job_spec("glm5-tiny", transport="filesystem", fs_root="/tmp/x", fs_keep=0)
