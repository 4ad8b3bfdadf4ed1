"""Shared by the pytest cases and the trainer processes they spawn (trainer_process.py).

Trainer weights here are a pure function of (seed, version), so a test can rebuild exactly
what a trainer process pushed and compare every destination byte with the C++ reference
converter's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from typing import Any, Optional

import torch

import weightsync as ws

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINER_PROCESS = os.path.join(HERE, "trainer_process.py")


def trainer_weights(layout: ws.Layout, seed: int, version: int) -> dict[str, torch.Tensor]:
    """Whole trainer tensors of a version: normal values of varied magnitude per tensor, in the
    layout's dtypes (what an optimizer step leaves in the trainer's parameters)."""
    out = {}
    for s in layout.sources:
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{s.name}/{version}".encode()))
        scale = 2.0 ** (zlib.crc32(s.name.encode()) % 9 - 6)
        values = torch.randn(tuple(s.shape), generator=g, dtype=torch.float32) * scale
        out[s.name] = values.to(torch.bfloat16 if s.dtype == "bf16" else torch.float32)
    return out


def nested_module(tensors: dict[str, torch.Tensor],
                  buffer_suffix: str = "_scale_inv") -> torch.nn.Module:
    """A torch.nn.Module whose dotted parameter names are the given names (scale tensors as
    buffers, the rest as parameters without grad), as an inference engine's model has them."""
    root = torch.nn.Module()
    for name, tensor in tensors.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if name.endswith(buffer_suffix):
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    return root


def assert_bit_exact(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], what: str) -> int:
    """Compares every byte; returns the bytes compared."""
    assert set(got) == set(want), f"{what}: tensor names differ"
    compared = 0
    for name, expected in want.items():
        a = ws.torch_interop.raw_bytes(got[name].cpu())
        b = ws.torch_interop.raw_bytes(expected)
        assert a.shape == b.shape, f"{what}: '{name}' has {a.numel()} bytes, expected {b.numel()}"
        bad = int((a != b).sum())
        assert bad == 0, f"{what}: '{name}' differs in {bad} of {a.numel()} bytes"
        compared += a.numel()
    return compared


class TrainerProcess:
    """A trainer rank in its own Python process (tests/python/trainer_process.py, or the
    subclass's SCRIPT), given its config as JSON."""

    SCRIPT = TRAINER_PROCESS

    def __init__(self, **config: Any) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.config = config
        self.proc = subprocess.Popen([sys.executable, self.SCRIPT, json.dumps(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)

    def result(self, timeout: float = 60.0) -> dict:
        """Waits for the process; returns the JSON it printed last (asserting it succeeded)."""
        out, err = self.proc.communicate(timeout=timeout)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, (f"trainer process printed no result (exit {self.proc.returncode}):\n"
                       f"{out}\n{err}")
        result = json.loads(lines[-1])
        result["stderr"] = err
        result["returncode"] = self.proc.returncode
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def job(coordinator: ws.Coordinator, job_id: str, **kwargs: Any) -> ws.JobSpec:
    """Publishes a job with short timeouts (a failing test fails fast)."""
    kwargs.setdefault("init_timeout", 30.0)
    kwargs.setdefault("step_timeout", 30.0)
    spec = ws.job_spec(**kwargs)
    ws.publish_job(coordinator, job_id, spec)
    return spec


def stop(processes: list[TrainerProcess],
         receivers: Optional[list[ws.WeightReceiver]] = None) -> None:
    for p in processes:
        p.kill()
    for r in receivers or []:
        r.close(timeout=5)
