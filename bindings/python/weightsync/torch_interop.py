"""Torch tensors at the boundary of the C++ core: checks, dtypes and pointers.

torch is imported lazily, so ``import weightsync`` never pays for it. Tensors
cross into the core as data pointers plus shape, dtype and device, after the
checks below; nothing is ever copied to make a tensor acceptable (a registered
copy would receive the writes while the live tensor stays stale, or dangle once
freed): a tensor the core cannot use in place is refused with an
:class:`~weightsync.errors.InvalidArgumentError` naming it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InvalidArgumentError, MismatchError, UnsupportedError

# Layout dtype names (as the core spells them) -> torch dtype attribute names.
_TORCH_NAMES = {"bf16": "bfloat16", "fp32": "float32", "u8": "uint8"}


def torch_module() -> Any:
    """Returns the torch module, importing it on first use."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a soft dependency
        raise UnsupportedError("this part of weightsync needs PyTorch (import torch failed)") from e
    return torch


def is_tensor(obj: Any) -> bool:
    """Whether obj is a torch.Tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def has_float8() -> bool:
    """Whether this torch has a native e4m3 dtype (torch >= 2.1)."""
    return hasattr(torch_module(), "float8_e4m3fn")


def torch_dtype(name: str) -> Any:
    """The torch dtype that holds a layout dtype ("fp8_e4m3" is uint8 without float8 dtypes)."""
    torch = torch_module()
    if name == "fp8_e4m3":
        return torch.float8_e4m3fn if has_float8() else torch.uint8
    try:
        return getattr(torch, _TORCH_NAMES[name])
    except KeyError:
        raise InvalidArgumentError(f"no torch dtype for layout dtype '{name}'") from None


def core_dtype(tensor: Any, expected: str | None = None) -> str:
    """The layout dtype name of a tensor. uint8 reads as "fp8_e4m3" where that is expected."""
    torch = torch_module()
    dt = tensor.dtype
    if dt == torch.bfloat16:
        return "bf16"
    if dt == torch.float32:
        return "fp32"
    if dt == torch.uint8:
        return "fp8_e4m3" if expected == "fp8_e4m3" else "u8"
    if has_float8() and dt == torch.float8_e4m3fn:
        return "fp8_e4m3"
    return str(dt).replace("torch.", "")


def device_index(tensor: Any) -> int:
    """-1 for host memory, the CUDA ordinal for device memory."""
    if tensor.device.type == "cpu":
        return -1
    if tensor.device.type == "cuda":
        return tensor.device.index if tensor.device.index is not None else 0
    raise UnsupportedError(f"tensors on '{tensor.device.type}' are not supported (cpu or cuda)")


def storage_nbytes(tensor: Any) -> int:
    """Bytes of the storage behind a tensor (torch 1.13 and 2.x)."""
    if hasattr(tensor, "untyped_storage"):
        return int(tensor.untyped_storage().nbytes())
    return int(tensor.storage().nbytes())


@dataclass(frozen=True)
class TensorRef:
    """A checked tensor as the core sees it. Holding it keeps the tensor alive."""

    name: str
    tensor: Any
    data_ptr: int
    shape: tuple[int, ...]
    dtype: str
    device: int  # -1 = host

    def as_core_tuple(self) -> tuple[str, int, list[int], str, int]:
        """(name, pointer, shape, dtype, device) as InferenceAgent takes it."""
        return (self.name, self.data_ptr, list(self.shape), self.dtype, self.device)


def check_tensor(name: str, tensor: Any, *, expected_dtype: str | None = None,
                 allow_padded_storage: bool = False) -> TensorRef:
    """Checks that `tensor` can be used in place and returns its TensorRef.

    Refused, with an InvalidArgumentError naming `name`: anything that is not a
    dense torch tensor; non-contiguous tensors; views into a larger storage
    (a storage offset, or fewer bytes than the storage holds -- they usually
    mean a temporary or a slice, whose memory is not what the model uses);
    tensors on devices other than cpu and cuda. With allow_padded_storage, a
    tensor may be a prefix of its storage (FSDP2 pads uneven shards that way).
    """
    if not is_tensor(tensor):
        raise InvalidArgumentError(
            f"'{name}': expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.layout != torch_module().strided:
        raise InvalidArgumentError(f"'{name}': only dense (strided) tensors are supported")
    if not tensor.is_contiguous():
        raise InvalidArgumentError(
            f"'{name}' is not contiguous (strides {tuple(tensor.stride())} for shape "
            f"{tuple(tensor.shape)}); weightsync uses tensors in place and never copies them: "
            "register the contiguous tensor the model itself uses")
    nbytes = tensor.numel() * tensor.element_size()
    storage = storage_nbytes(tensor)
    offset = tensor.storage_offset()
    if offset != 0 or (nbytes != storage and not (allow_padded_storage and nbytes <= storage)):
        raise InvalidArgumentError(
            f"'{name}' is a view into a larger storage (offset {offset} elements, "
            f"{nbytes} of {storage} bytes); register the tensor that owns its memory, not a "
            "slice or view of it")
    device = device_index(tensor)
    if tensor.numel() == 0:
        raise InvalidArgumentError(f"'{name}' is empty")
    return TensorRef(name, tensor, int(tensor.data_ptr()), tuple(int(d) for d in tensor.shape),
                     core_dtype(tensor, expected_dtype), device)


def check_unchanged(ref: TensorRef, current: Any) -> None:
    """Raises MismatchError if the tensor now at `ref.name` is not the registered memory."""
    if current is ref.tensor and current.data_ptr() == ref.data_ptr and current.shape == ref.shape:
        return  # the registered tensor object, same memory and shape (the per-push fast path)
    if not is_tensor(current):
        raise MismatchError(f"'{ref.name}' is no longer a tensor ({type(current).__name__})")
    if (int(current.data_ptr()) != ref.data_ptr or tuple(current.shape) != ref.shape
            or core_dtype(current, ref.dtype) != ref.dtype or device_index(current) != ref.device):
        raise MismatchError(
            f"'{ref.name}' changed since it was registered (memory at {current.data_ptr():#x} "
            f"{tuple(current.shape)} {current.dtype}, registered {ref.data_ptr:#x} {ref.shape} "
            f"{ref.dtype}): the model re-allocated it, so weightsync would write where the model "
            "no longer reads; register again (a new job) after re-allocating")


def empty(shape: Sequence[int], dtype: str, device: Any = "cpu") -> Any:
    """A zero tensor for a layout dtype (fp8 as uint8 where torch has no float8)."""
    torch = torch_module()
    return torch.zeros(tuple(shape), dtype=torch_dtype(dtype), device=device)


def from_bytes(data: bytes, shape: Sequence[int], dtype: str) -> Any:
    """A CPU tensor holding `data` (a copy) as `dtype` of `shape`."""
    torch = torch_module()
    if not data:
        return torch.empty(tuple(shape), dtype=torch_dtype(dtype))
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return raw.view(torch_dtype(dtype)).reshape(tuple(shape))


def raw_bytes(tensor: Any) -> Any:
    """A uint8 view of a contiguous CPU tensor's bytes (for bit-exact comparisons)."""
    torch = torch_module()
    flat = tensor.detach().reshape(-1)
    if flat.dtype == torch.uint8:
        return flat
    return flat.view(torch.uint8)
