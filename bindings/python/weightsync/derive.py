"""Layouts derived from the two sides' parameters, with no layout written by hand (issue 15).

::

    layout = weightsync.derive_layout(trainer_model, inference_model, rules="vllm")
    spec = weightsync.job_spec(model=layout, trainer_ranks=8, engines=2, engine_ranks=8)

Only names, shapes and dtypes are read, never values: modules on the ``meta``
device work (build the other side's model under ``torch.device("meta")``). The
C++ core matches every inference tensor to the trainer tensors that produce it
under the rule set ("vllm": vLLM's fused qkv_proj / gate_up_proj and stacked
w13 / w2 experts; "hf-fp8": a Hugging Face model in 128x128 block FP8), and
refuses, naming the tensor, anything it cannot cover. The result does not
depend on the order of either side, so the trainer and every inference rank
get the same layout and fingerprint; :func:`weightsync.job_spec` carries it in
the job spec, so the other agents need not derive it themselves.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Union

from . import _core
from .errors import InvalidArgumentError

Layout = _core.Layout

# (name, shape, dtype): a parameter as the derivation sees it.
Param = tuple[str, list[int], str]
Parameters = Union[Any, Mapping[str, Any], Iterable[Any]]

_DTYPE_NAMES = {"bfloat16": "bf16", "float32": "fp32", "float8_e4m3fn": "fp8_e4m3",
                "uint8": "u8"}


def rule_sets() -> list[str]:
    """The rule sets :func:`derive_layout` knows ("hf-fp8", "vllm")."""
    return list(_core.rule_sets())


def _dtype_name(side: str, name: str, dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    text = str(dtype).replace("torch.", "")
    if text not in _DTYPE_NAMES:
        raise InvalidArgumentError(
            f"{side} tensor '{name}' is {dtype}: weightsync moves bf16 or fp32 trainer tensors "
            "into bf16, fp32 or float8_e4m3fn inference tensors")
    return _DTYPE_NAMES[text]


def _param(side: str, name: Any, shape: Any, dtype: Any) -> Param:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{side} parameter names must be non-empty strings, got {name!r}")
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"{side} tensor '{name}': shape must be a sequence of integers, got {shape!r}") from None
    if not 1 <= len(dims) <= 3:
        raise InvalidArgumentError(
            f"{side} tensor '{name}' has shape {tuple(dims)}: layouts hold 1-D to 3-D tensors "
            "(scalar and per-tensor scales are not supported)")
    return name, dims, _dtype_name(side, name, dtype)


def _value(side: str, name: str, value: Any) -> Param:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return _param(side, name, tuple(value.shape), value.dtype)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _param(side, name, value[0], value[1])
    raise InvalidArgumentError(
        f"{side} tensor '{name}': expected a tensor (a meta tensor will do) or (shape, dtype), "
        f"got {type(value).__name__}")


def parameter_list(side: str, params: Parameters) -> list[Param]:
    """(name, shape, dtype) of every tensor one side holds.

    params: a torch.nn.Module (its parameters, tied ones once, and its persistent buffers, such
    as DeepSeek's e_score_correction_bias; non-persistent buffers like rotary tables are not
    weights), a mapping name -> tensor or (shape, dtype), or an iterable of (name, tensor) or
    (name, shape, dtype). DTensors count with their global shape.
    """
    if hasattr(params, "named_parameters") and callable(params.named_parameters):
        out = [_value(side, n, p) for n, p in params.named_parameters()]
        persistent = set(params.state_dict(keep_vars=True).keys())
        out += [_value(side, n, b) for n, b in params.named_buffers() if n in persistent]
        return out
    if isinstance(params, Mapping):
        return [_value(side, n, v) for n, v in params.items()]
    out = []
    for item in params:
        if isinstance(item, (tuple, list)) and len(item) == 3:
            out.append(_param(side, *item))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append(_value(side, item[0], item[1]))
        else:
            raise InvalidArgumentError(
                f"{side} parameters: expected (name, tensor) or (name, shape, dtype), got "
                f"{item!r}")
    return out


def derive_layout(trainer: Parameters, inference: Parameters, rules: str = "vllm", *,
                  name: Optional[str] = None) -> Layout:
    """The layout that turns `trainer`'s parameters into `inference`'s under `rules`.

    trainer / inference: modules (meta tensors work), mappings or parameter lists (see
    :func:`parameter_list`). rules: "vllm" or "hf-fp8" (:func:`rule_sets`). name: the layout's
    name (default "derived-<rules>"; both sides must use the same one, as it is part of the
    fingerprint). Which inference tensors are FP8 is read off their dtypes (float8_e4m3fn with a
    `<name>_scale_inv` fp32 tensor of 128x128 block scales).

    Raises InvalidArgumentError naming the tensor when a tensor of either side has no
    counterpart, shapes or fused parts do not add up, or a scale tensor is missing; NotFoundError
    for an unknown rule set.
    """
    if not isinstance(rules, str):
        raise InvalidArgumentError(f"rules must be a rule set name, got {rules!r}")
    if name is None:
        name = f"derived-{rules}"
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"name must be a non-empty string, got {name!r}")
    return _core.derive_layout(parameter_list("trainer", trainer),
                               parameter_list("inference", inference), rules, name)

