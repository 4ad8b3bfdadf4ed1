"""Fixtures of the Python test suite: an in-process coordinator and a fresh job id per test.

Run with Debian's interpreter (it has torch): /usr/bin/python3 -m pytest tests/python, with
PYTHONPATH=<build>/python for a CMake build (ctest sets it), or nothing after `pip install .`.
"""

from __future__ import annotations

import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

torch = pytest.importorskip("torch")
ws = pytest.importorskip("weightsync")

_ids = itertools.count()


@pytest.fixture(scope="session")
def coordinator() -> "ws.Coordinator":
    c = ws.Coordinator("127.0.0.1", 0)
    yield c
    c.stop()


@pytest.fixture
def job_id(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}-{os.getpid()}-{next(_ids)}"
