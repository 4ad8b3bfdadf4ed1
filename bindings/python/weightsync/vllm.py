"""A vLLM worker extension that receives weightsync pushes into the live model.

For vLLM versions without the weight-transfer API. With vLLM >= 0.33 use the ``weightsync``
backend of that API instead (:mod:`weightsync.vllm_transfer`, :mod:`weightsync.vllm_trainer`):
vLLM's own ``init_weight_transfer_engine`` / ``update_weights`` calls, no extension needed.

Start vLLM with the extension mixed into its workers::

    llm = LLM(model=..., worker_extension_cls="weightsync.vllm.WeightSyncWorkerExtension")
    # or: vllm serve ... --worker-extension-cls weightsync.vllm.WeightSyncWorkerExtension

and drive it through ``collective_rpc``, which calls the method on every worker::

    llm.collective_rpc("weightsync_init", args=("10.0.0.1:29600", "run-7"),
                       kwargs={"engine": 0})
    # per step, with generation paused (e.g. llm.sleep/pause, or the server's /pause route):
    llm.collective_rpc("weightsync_update", args=(step,))
    llm.collective_rpc("weightsync_close")

vLLM mixes the extension into its worker class and refuses names the worker already has
(recent vLLM workers define ``update_weights``, ``init_weight_transfer_engine`` and
``shutdown``), so every method here carries the ``weightsync_`` prefix. The methods use the
worker attributes vLLM documents for extensions: ``self.model_runner.model`` (the
torch.nn.Module whose parameters and ``*_weight_scale_inv`` buffers receive the writes) and
``self.rank`` (the worker's rank in the engine, the default inference rank).
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from .inference import WeightReceiver


def _resolve(qualname: str) -> Any:
    """"package.module:function" (or "package.module.function") -> the object."""
    module, sep, attr = qualname.partition(":")
    if not sep:
        module, _, attr = qualname.rpartition(".")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


class WeightSyncWorkerExtension:
    """Methods vLLM's collective_rpc calls on each worker (see the module docstring)."""

    def weightsync_init(self, coordinator: str, job: str, engine: int = 0,
                        rank: Optional[int] = None, after_update: Optional[str] = None,
                        connect_timeout: float = 60.0) -> dict:
        """Registers the model's tensors as this worker's destination and joins the job.

        coordinator / job: the weightsync coordinator ("host:port") and job id. engine: this
        vLLM instance's index in the job's fleet; rank: the worker's rank in it (default
        self.rank). after_update: "module:function" called as function(model, version) after
        every version lands and before generation resumes (e.g. recompute MLA's absorbed
        W_UV / W_UK_T from kv_b_proj); by default the model's own
        ``weightsync_after_update(version)`` if it has one. Blocks until every trainer joined.
        """
        model = self.model_runner.model
        receiver = WeightReceiver(coordinator, job, engine=engine,
                                  rank=int(self.rank) if rank is None else rank,
                                  connect_timeout=connect_timeout)
        receiver.register(model)
        if after_update is not None:
            hook = _resolve(after_update)
            receiver.add_hook(lambda version: hook(model, version))
        elif callable(getattr(model, "weightsync_after_update", None)):
            receiver.add_hook(model.weightsync_after_update)
        receiver.connect()
        self._weightsync_receiver = receiver
        return {"peer": receiver.peer.name, "tensors": len(receiver.expected),
                "bytes": sum(t.bytes for t in receiver.expected)}

    def weightsync_update(self, version: Optional[int] = None) -> dict:
        """Receives weight version `version` (default: the next one); returns its result."""
        return self._weightsync().update(version)

    def weightsync_version(self) -> int:
        """The weight version this worker runs (0 before the first update)."""
        receiver = getattr(self, "_weightsync_receiver", None)
        return 0 if receiver is None else receiver.version

    def weightsync_close(self) -> None:
        """Leaves the job. Idempotent."""
        receiver = getattr(self, "_weightsync_receiver", None)
        if receiver is not None:
            receiver.close()
            self._weightsync_receiver = None

    def _weightsync(self) -> WeightReceiver:
        receiver = getattr(self, "_weightsync_receiver", None)
        if receiver is None:
            raise RuntimeError("weightsync_init() was not called on this worker")
        return receiver
