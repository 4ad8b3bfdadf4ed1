"""Registers the ``weightsync`` weight-transfer backend with vLLM (>= 0.33).

vLLM runs every ``vllm.general_plugins`` entry point in each of its processes (API server,
engine core, workers) before it builds engines; weightsync's pyproject.toml declares
``weightsync = "weightsync.vllm_plugin:register"`` there, so an installed weightsync makes
``WeightTransferConfig(backend="weightsync")`` work with no user code. vLLM may load plugins
more than once per process: registration is idempotent. The engines are registered by module
path, so nothing heavier than vLLM's factory is imported until an engine is created.
"""

from __future__ import annotations

BACKEND = "weightsync"
WORKER_ENGINE = ("weightsync.vllm_transfer", "WeightSyncWeightTransferEngine")
TRAINER_ENGINE = ("weightsync.vllm_trainer", "WeightSyncTrainerWeightTransferEngine")


def register() -> None:
    """Registers the worker and trainer engines under "weightsync" (no-op if they are)."""
    try:
        from vllm.distributed.weight_transfer.factory import (
            WeightTransferEngineFactory,
            WeightTransferTrainerFactory,
        )
    except ImportError:  # a vLLM without the weight-transfer API: use weightsync.vllm instead
        return
    for factory, (module, cls) in ((WeightTransferEngineFactory, WORKER_ENGINE),
                                   (WeightTransferTrainerFactory, TRAINER_ENGINE)):
        if BACKEND in getattr(factory, "_registry", {}):
            continue
        try:
            factory.register_engine(BACKEND, module, cls)
        except ValueError:  # registered concurrently: the name is taken, which is all we need
            if BACKEND not in getattr(factory, "_registry", {}):
                raise
