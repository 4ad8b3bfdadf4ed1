"""An agent's Prometheus metrics from Python: the numbers the C++ agents count
(engine/agent_metrics.h), as a dict (``metrics()``) and, with a port, served at
``http://host:port/metrics`` in the Prometheus text format while the agent lives."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _core
from .errors import UnsupportedError


class AgentMetrics:
    """Counters of one agent; `port` None = not served (the numbers are still counted)."""

    def __init__(self, role: str, agent: str, port: Optional[int], host: str) -> None:
        self._server = None
        try:
            self._core: Optional[Any] = _core.AgentMetrics(role, agent)
        except UnsupportedError:
            if port is not None:
                raise
            self._core = None  # a build without prometheus-cpp: nothing is counted
            return
        if port is not None:
            self._server = _core.MetricsServer(self._core, host, port)

    def attach(self, agent: Any) -> None:
        if self._core is not None:
            agent.use_metrics(self._core)

    @property
    def port(self) -> Optional[int]:
        """The port /metrics is served on (None when not served)."""
        return None if self._server is None else self._server.port

    def snapshot(self) -> dict:
        return {} if self._core is None else json.loads(self._core.snapshot())

    def text(self) -> str:
        return "" if self._core is None else self._core.text()


class MetricsAccess:
    """metrics() and metrics_port for an agent façade holding an AgentMetrics as _metrics."""

    _metrics: AgentMetrics

    def metrics(self) -> dict:
        """This agent's Prometheus numbers (what /metrics serves with metrics_port): versions
        pushed/received and held, bytes, failures by kind, per-phase count and sum of seconds,
        registered and slot-arena bytes. Empty in a build without prometheus-cpp."""
        return self._metrics.snapshot()

    @property
    def metrics_port(self) -> Optional[int]:
        """The port of http://host:port/metrics (None unless metrics_port was given)."""
        return self._metrics.port
