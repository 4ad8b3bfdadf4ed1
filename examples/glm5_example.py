"""What the two example processes share: the trainer's weights at each version (a pure function
of seed and version, so the worker can rebuild them and check every byte it received) and a
helper that turns dotted tensor names into a torch.nn.Module."""

from __future__ import annotations

import zlib

import torch

import weightsync as ws


def trainer_weights(layout: ws.Layout, seed: int, version: int) -> dict[str, torch.Tensor]:
    """The trainer's tensors after optimizer step `version` (whole, in the layout's dtypes)."""
    out = {}
    for s in layout.sources:
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{s.name}/{version}".encode()))
        values = torch.randn(tuple(s.shape), generator=g) * 0.02
        out[s.name] = values.to(torch.bfloat16 if s.dtype == "bf16" else torch.float32)
    return out


def build_module(tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A module whose parameters (and `*_scale_inv` buffers) carry the given dotted names."""
    root = torch.nn.Module()
    for name, tensor in tensors.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if name.endswith("_scale_inv"):
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    return root
