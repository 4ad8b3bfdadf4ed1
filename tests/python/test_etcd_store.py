"""A job on etcd from Python: store="etcd://host:port" wherever a coordinator address goes,
against a real etcd server (skipped without Debian's etcd-server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import weightsync as ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def etcd() -> str:
    binary = shutil.which("etcd")
    if binary is None:
        pytest.skip("no etcd binary on PATH: install Debian's etcd-server (scripts/setup.sh)")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as data:
        client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        proc = subprocess.Popen([binary, "--name", "t", "--data-dir", data,
                                 "--listen-client-urls", client, "--advertise-client-urls", client,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", f"t={peer}", "--log-level", "warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield "etcd://" + client.removeprefix("http://")
        finally:
            proc.kill()
            proc.wait()


def test_publish_and_read_a_job_on_etcd(etcd: str, job_id: str) -> None:
    spec = ws.job_spec("glm5-tiny", trainer_ranks=2, trainer_ep=2, engines=1, engine_ranks=2,
                       engine_ep=2)
    ws.publish_job(None, job_id, spec, store=etcd)
    got = ws.read_job(None, job_id, timeout=10, store=etcd)
    assert got.model == "glm5-tiny" and got.layers == spec.layers and got.seed == spec.seed
    with pytest.raises(ws.TimeoutError):
        ws.read_job(None, job_id + "-absent", timeout=0.2, store=etcd)
    with pytest.raises(ws.InvalidArgumentError, match="etcd://"):
        ws.read_job(None, job_id, store="etcd://nowhere")
    with pytest.raises(ws.InvalidArgumentError):
        ws.read_job(None, job_id)
