"""weightsync: push freshly trained weights from RL trainers into inference engines.

The C++ engine (``weightsync._core``) converts the trainer's tensors into the
inference engine's kernel format (FP8 128x128 block-quantized where the layout
says so) and writes them with one-sided writes straight into the engine's
registered tensors. This package wraps it for PyTorch:

* :class:`WeightSender` -- a trainer rank: register tensors (plain, FSDP2
  ``DTensor`` shards, or :class:`Shard`), then ``push(version)``;
* :class:`WeightReceiver` -- an inference rank: register a ``torch.nn.Module``'s
  parameters and scale buffers, add hooks, ``update()`` / ``start()`` +
  ``wait_for_version(n)``;
* :mod:`weightsync.vllm_transfer` / :mod:`weightsync.vllm_trainer` -- the ``weightsync``
  backend of vLLM's weight-transfer API (vLLM >= 0.33; registered by the
  ``vllm.general_plugins`` entry point, :mod:`weightsync.vllm_plugin`);
* :mod:`weightsync.vllm` -- a vLLM worker extension over WeightReceiver, for vLLM
  versions without that API;
* :class:`Coordinator`, :func:`job_spec`, :func:`publish_job` -- the job's
  control plane; :func:`derive_layout` -- a model's layout from the two sides'
  modules; :mod:`weightsync.errors` -- typed exceptions.
"""

from . import errors
from ._core import builtin_layouts, local_tensors
from .derive import derive_layout, rule_sets
from .dtensor import Shard
from .errors import (
    InvalidArgumentError,
    MismatchError,
    NotFoundError,
    PeerLostError,
    ProtocolError,
    TimeoutError,
    TransportError,
    UnauthenticatedError,
    UnsupportedError,
    WeightsyncError,
)
from .inference import WeightReceiver
from .job import (
    Coordinator,
    EngineSpec,
    JobSpec,
    Layout,
    PeerSpec,
    TrainerMesh,
    find_peer,
    job_layout,
    job_spec,
    publish_job,
    read_job,
    reference_synthetic,
    reference_tensors,
    resolve_layout,
    synthetic_sources,
)
from .trainer import WeightSender

__version__ = "0.1.0"

__all__ = [
    "Coordinator",
    "EngineSpec",
    "InvalidArgumentError",
    "JobSpec",
    "Layout",
    "MismatchError",
    "NotFoundError",
    "PeerLostError",
    "PeerSpec",
    "ProtocolError",
    "Shard",
    "TimeoutError",
    "TrainerMesh",
    "TransportError",
    "UnauthenticatedError",
    "UnsupportedError",
    "WeightReceiver",
    "WeightSender",
    "WeightsyncError",
    "builtin_layouts",
    "derive_layout",
    "errors",
    "find_peer",
    "job_layout",
    "job_spec",
    "local_tensors",
    "publish_job",
    "read_job",
    "reference_synthetic",
    "reference_tensors",
    "resolve_layout",
    "rule_sets",
    "synthetic_sources",
]
