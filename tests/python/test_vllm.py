"""The vLLM worker extension, driven the way vLLM drives one (vLLM itself cannot be installed
here): a stand-in engine mixes the extension into its worker class exactly as vLLM's
WorkerWrapperBase does -- refusing any attribute the worker already has -- and collective_rpc
runs a method on every worker concurrently, as vLLM's worker processes do."""

from __future__ import annotations

import importlib
import threading
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import weightsync as ws
import weightsync.vllm
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop, trainer_weights

KV_B = "self_attn.kv_b_proj.weight"


class StandInWorker:
    """The parts of vLLM's v1 GPU worker an extension relies on, plus the methods of its own
    that an extension must not shadow."""

    def __init__(self, rank: int, model: torch.nn.Module) -> None:
        self.rank = rank
        self.local_rank = rank
        self.device = torch.device("cpu")
        self.model_runner = SimpleNamespace(model=model)

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        raise AssertionError("vLLM's own weight transfer is not used")

    def update_weights(self, update_info: dict) -> None:
        raise AssertionError("vLLM's own weight transfer is not used")

    def shutdown(self) -> None:
        pass


class StandInLLM:
    """worker_extension_cls + collective_rpc, as vLLM implements them."""

    def __init__(self, worker_extension_cls: str, models: list[torch.nn.Module]) -> None:
        module, _, name = worker_extension_cls.rpartition(".")
        extension = getattr(importlib.import_module(module), name)
        for attr in dir(extension):
            if attr.startswith("__"):
                continue
            assert not hasattr(StandInWorker, attr), (
                f"Worker class {StandInWorker} already has an attribute {attr}, which conflicts "
                f"with the worker extension class {extension}.")
        worker_class = type("StandInWorkerWithExtension", (StandInWorker, extension), {})
        self.workers = [worker_class(rank, model) for rank, model in enumerate(models)]

    def collective_rpc(self, method: str, args: tuple = (), kwargs: dict | None = None) -> list:
        results: list[Any] = [None] * len(self.workers)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                results[i] = getattr(self.workers[i], method)(*args, **(kwargs or {}))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(self.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if errors:
            raise errors[0]
        return results


def e4m3_to_float(codes: torch.Tensor) -> torch.Tensor:
    """Decodes float8_e4m3fn bytes (uint8 on torch without float8 dtypes)."""
    table = []
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        exponent, mantissa = (b >> 3) & 0xF, b & 7
        if exponent == 0xF and mantissa == 7:
            table.append(float("nan"))
        elif exponent == 0:
            table.append(sign * mantissa / 8 * 2.0 ** -6)
        else:
            table.append(sign * (1 + mantissa / 8) * 2.0 ** (exponent - 7))
    return torch.tensor(table)[codes.reshape(-1).view(torch.uint8).long()].reshape(codes.shape)


def dequantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    rows, cols = weight.shape
    blocks = scale.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
    return e4m3_to_float(weight) * blocks


def recompute_absorbed(model: torch.nn.Module, version: int) -> None:
    """An after_update hook (vLLM's MLA keeps W_UV / W_UK_T derived from kv_b_proj at load
    time; they must be recomputed after every update, reference design B15)."""
    model.absorbed = {}
    for name, param in model.named_parameters():
        if name.endswith(KV_B):
            scale = model.get_buffer(name + "_scale_inv")
            model.absorbed[name] = dequantize(param.detach(), scale).to(torch.bfloat16)
    model.absorbed_version = version


def test_worker_extension_names_do_not_clash_with_vllm_workers() -> None:
    class Clashing(ws.vllm.WeightSyncWorkerExtension):
        def update_weights(self, version: int) -> None:
            pass

    ws.vllm.Clashing = Clashing
    try:
        with pytest.raises(AssertionError, match="already has an attribute update_weights"):
            StandInLLM("weightsync.vllm.Clashing", [])
    finally:
        del ws.vllm.Clashing
    StandInLLM("weightsync.vllm.WeightSyncWorkerExtension", [])


def test_vllm_worker_extension_receives_two_versions(coordinator: ws.Coordinator,
                                                     job_id: str) -> None:
    seed = 5
    spec = job(coordinator, job_id, engine_ranks=2, engine_ep=2)
    layout = ws.resolve_layout(spec.model)
    peers = [ws.find_peer(spec, 0, rank) for rank in range(2)]
    models = [nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                             for t in ws.local_tensors(layout, peer)}) for peer in peers]
    llm = StandInLLM("weightsync.vllm.WeightSyncWorkerExtension", models)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             seed=seed)
    try:
        infos = llm.collective_rpc(
            "weightsync_init", args=(coordinator.address, job_id),
            kwargs={"engine": 0, "after_update": "test_vllm:recompute_absorbed"})
        assert [i["peer"] for i in infos] == ["e0r0", "e0r1"]
        for version in (1, 2):
            results = llm.collective_rpc("weightsync_update", args=(version,))
            assert all(r["committed"] and r["version"] == version for r in results)
            sources = trainer_weights(layout, seed, version)
            for model, peer in zip(models, peers):
                want = ws.reference_tensors(layout, peer, sources)
                got = dict(model.named_parameters()) | dict(model.named_buffers())
                assert_bit_exact(got, want, f"{peer.name} version {version}")
                assert model.absorbed_version == version
                for name, absorbed in model.absorbed.items():
                    expected = dequantize(want[name], want[name + "_scale_inv"]).to(torch.bfloat16)
                    assert torch.equal(absorbed, expected), name
        assert llm.collective_rpc("weightsync_version") == [2, 2]
        llm.collective_rpc("weightsync_close")
        assert llm.collective_rpc("weightsync_version") == [0, 0]
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2], out
    finally:
        stop([trainer])
        for worker in llm.workers:
            worker.weightsync_close()
