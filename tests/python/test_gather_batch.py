"""FSDP DTensors the plan gathers go through one packed all-gather per process group into
whole tensors allocated once (weightsync.dtensor.GatherBatch): checked here with a real gloo
process group of two processes, bit for bit, across in-place updates."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_packed_gather_matches_the_whole_tensors(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    init = tmp_path / "init"
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "gather_process.py"), str(r),
                               "2", str(init)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.strip() == "ok", err
