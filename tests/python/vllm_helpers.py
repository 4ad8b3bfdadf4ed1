"""The vLLM side of the weight-transfer tests: real vLLM classes, workers in this process.

Each worker's engine is created by vLLM's own WeightTransferEngineFactory from a real
VllmConfig (CPU device; TP, expert parallelism and the worker's rank set as vLLM sets them),
with a torch.nn.Module as the model. The weight-update calls go through vLLM's own GPU
`Worker` methods (init_weight_transfer_engine, start/update/finish_weight_update,
shutdown_weight_transfer_engine) on workers built without Worker.__init__, which needs a GPU.
`Workers` runs a call on every worker at once, as vLLM's collective_rpc does, and
`Workers.serve()` answers a trainer process's VLLMWeightSyncClient calls
(vllm_trainer_process.RpcClient), as vLLM's RL routes do.
"""

from __future__ import annotations

import threading
from multiprocessing.connection import Listener
from types import SimpleNamespace
from typing import Any, Callable, Optional

import torch
from vllm.config import DeviceConfig, ParallelConfig, VllmConfig
from vllm.config.weight_transfer import WeightTransferConfig
from vllm.distributed.weight_transfer import WeightTransferEngineFactory
from vllm.v1.worker.gpu_worker import Worker

AUTHKEY = b"weightsync-vllm-test"


def vllm_config(rank: int = 0, tp: int = 1, expert_parallel: bool = False) -> VllmConfig:
    parallel = ParallelConfig(tensor_parallel_size=tp, enable_expert_parallel=expert_parallel)
    config = VllmConfig(device_config=DeviceConfig(device="cpu"), parallel_config=parallel,
                        weight_transfer_config=WeightTransferConfig(backend="weightsync"))
    config.parallel_config.rank = rank  # what vLLM's WorkerBase does in each worker
    return config


def create_engine(model: torch.nn.Module, rank: int = 0, tp: int = 1,
                  expert_parallel: bool = False) -> Any:
    config = vllm_config(rank, tp, expert_parallel)
    return WeightTransferEngineFactory.create_engine(config.weight_transfer_config, config,
                                                     torch.device("cpu"), model)


def worker(engine: Any, model: torch.nn.Module) -> Worker:
    """A vLLM Worker holding `engine`, with the state its weight-update methods use."""
    w = Worker.__new__(Worker)
    w.vllm_config = engine.vllm_config
    w.parallel_config = engine.vllm_config.parallel_config
    w.speculative_config = None
    w.rank = w.parallel_config.rank
    w.weight_transfer_engine = engine
    w._weight_update_active = False
    w._weight_update_is_draft = False
    w.model_runner = SimpleNamespace(get_model=lambda: model, get_draft_model=lambda: None,
                                     reset_lora_state=lambda: None)
    return w


class Workers:
    """The workers of one vLLM instance (TP = EP = len(models) when more than one)."""

    def __init__(self, models: list[torch.nn.Module]) -> None:
        n = len(models)
        self.models = models
        self.engines = [create_engine(m, rank=r, tp=n, expert_parallel=n > 1)
                        for r, m in enumerate(models)]
        self.workers = [worker(e, m) for e, m in zip(self.engines, models)]
        self.calls: list[str] = []
        self._listener: Optional[Listener] = None
        self._thread: Optional[threading.Thread] = None

    def collective(self, fn: Callable[[Worker], Any], timeout: float = 120.0,
                   return_exceptions: bool = False) -> list:
        """fn(worker) on every worker at once; raises the first error, or (return_exceptions)
        returns each worker's exception in place of its result."""
        results: list[Any] = [None] * len(self.workers)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                results[i] = fn(self.workers[i])
            except BaseException as e:  # noqa: BLE001 - re-raised below
                results[i] = e
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(self.engines))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in threads), "a worker call hung"
        if errors and not return_exceptions:
            raise errors[0]
        return results

    # vLLM's Worker methods, on every worker.
    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self.calls.append("init")
        self.collective(lambda w: w.init_weight_transfer_engine(init_info))

    def start_weight_update(self) -> None:
        self.calls.append("start")
        self.collective(lambda w: w.start_weight_update())

    def update_weights(self, update_info: Any) -> None:
        self.calls.append(f"update {update_info}")
        self.collective(lambda w: w.update_weights(update_info))

    def finish_weight_update(self, weight_version: Optional[str] = None) -> None:
        self.calls.append(f"finish {weight_version}")
        self.collective(lambda w: w.finish_weight_update())

    def shutdown_weight_transfer_engine(self) -> None:
        self.collective(lambda w: w.shutdown_weight_transfer_engine())

    # A trainer process's client.
    def serve(self) -> tuple[str, int]:
        """Listens for one trainer connection; returns its address."""
        self._listener = Listener(("127.0.0.1", 0), authkey=AUTHKEY)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self._listener.address

    def _serve(self) -> None:
        assert self._listener is not None
        with self._listener.accept() as conn:
            while True:
                try:
                    method, args = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    getattr(self, method)(*args)
                    conn.send(("ok", None))
                except Exception as e:  # noqa: BLE001 - sent to the trainer
                    conn.send(("error", f"{type(e).__name__}: {e}"))

    def close(self) -> None:
        for engine in self.engines:
            engine.shutdown()
        if self._listener is not None:
            self._listener.close()
