"""C++ errors arrive as typed Python exceptions (one class per weightsync::Errc)."""

from __future__ import annotations

import builtins
import socket

import pytest

import weightsync as ws
from weightsync import _core, errors


def test_every_error_class_derives_from_the_base_and_has_a_code() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ws.WeightsyncError)
        if cls is not ws.WeightsyncError:
            assert isinstance(cls.code, str) and cls.code


def test_unknown_layout_is_not_found() -> None:
    with pytest.raises(ws.NotFoundError, match="unknown model 'no-such-model'") as info:
        ws.resolve_layout("no-such-model")
    assert isinstance(info.value, LookupError)
    assert info.value.code == "not found"


def test_bad_mesh_is_invalid_argument_and_value_error() -> None:
    with pytest.raises(ws.InvalidArgumentError, match="EP degree 3 must divide"):
        ws.TrainerMesh(fsdp=4, ep=3)
    with pytest.raises(ValueError):
        ws.job_spec(trainer_ranks=4, trainer_ep=3)
    with pytest.raises(ws.InvalidArgumentError, match="stage_bytes must be >= 0"):
        ws.job_spec(stage_bytes=-1)


def test_store_wait_timeout_is_also_the_builtin_timeout(coordinator: ws.Coordinator,
                                                       job_id: str) -> None:
    store = _core.connect_store(coordinator.address, job_id)
    store.set("present", b"yes")
    assert store.get("present") == b"yes"
    assert store.get("absent") is None
    with pytest.raises(builtins.TimeoutError) as info:
        store.wait("absent", 0.05)
    assert isinstance(info.value, ws.TimeoutError)


def test_unreachable_coordinator_is_peer_lost() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ws.PeerLostError) as info:
        _core.connect_store(f"127.0.0.1:{port}", "job", 0.2)
    assert isinstance(info.value, ConnectionError)


def test_bad_address_and_missing_job_spec(coordinator: ws.Coordinator, job_id: str) -> None:
    with pytest.raises(ws.InvalidArgumentError, match="host:port"):
        _core.connect_store("localhost", "job")
    with pytest.raises(ws.TimeoutError):
        ws.WeightSender(coordinator.address, job_id, rank=0, connect_timeout=0.2)
