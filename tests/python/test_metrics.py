"""Prometheus metrics: every agent of a `weightsync demo --metrics-port 0` serves /metrics while
the job runs; scraped with an HTTP client and parsed with prometheus_client's own text parser.
And the Python agents count the same numbers (metrics(), metrics_port) while push() and update()
keep returning their dicts."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import weightsync as ws
from helpers import TrainerProcess, job, stop

parser = pytest.importorskip("prometheus_client.parser",
                             reason="python3-prometheus-client is not installed")


def weightsync_bin() -> str:
    path = os.environ.get("WEIGHTSYNC_BIN") or str(Path(ws.__file__).parents[2] / "weightsync")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no weightsync binary at {path} (set WEIGHTSYNC_BIN)")
    return path


def scrape(url: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample at url."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("agent", "role")}
            samples[(s.name, frozenset(labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_demo_agents_serve_metrics_while_the_job_runs() -> None:
    steps = 40
    demo = subprocess.Popen([weightsync_bin(), "demo", "--metrics-port", "0", "--steps",
                             str(steps), "--json", "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls = {}
        for line in demo.stderr:  # the launcher prints each agent's endpoint as it starts
            m = re.match(r"\s+metrics of (\S+) at (http://\S+/metrics)", line)
            if m:
                urls[m.group(1)] = m.group(2)
            if len(urls) == 8:
                break
        assert sorted(urls) == ["inference-e0r0", "inference-e0r1", "inference-e1r0",
                                "inference-e1r1", "trainer0", "trainer1", "trainer2", "trainer3"]
        # Scrape while versions go by, until every agent has seen at least two.
        seen = {}
        deadline = time.monotonic() + 60
        while len(seen) < len(urls) and time.monotonic() < deadline:
            for who, url in urls.items():
                if who in seen:
                    continue
                samples = scrape(url)
                if value(samples, "weightsync_version_held") >= 2:
                    seen[who] = samples
        assert len(seen) == len(urls), f"agents that never held version 2: {set(urls) - set(seen)}"
        for who, s in seen.items():
            held = value(s, "weightsync_version_held")
            assert all(value(s, "weightsync_failures_total", kind=k) == 0
                       for k in ("timeout", "peer lost", "transport", "mismatch"))
            assert value(s, "weightsync_registered_bytes") > 0
            if who.startswith("trainer"):
                pushed = value(s, "weightsync_versions_pushed_total")
                assert pushed == held  # every version committed, none missed
                assert value(s, "weightsync_bytes_written_total") > 0
                assert value(s, "weightsync_slot_arena_bytes") == value(
                    s, "weightsync_registered_bytes")
                for phase in ("convert", "post", "drain", "barrier", "pause"):
                    assert value(s, "weightsync_phase_seconds_count", phase=phase) == pushed
                    assert value(s, "weightsync_phase_seconds_sum", phase=phase) >= 0
                    # The histogram's +Inf bucket holds every observation.
                    assert value(s, "weightsync_phase_seconds_bucket", phase=phase,
                                 le="+Inf") == pushed
            else:
                received = value(s, "weightsync_versions_received_total")
                assert received == held
                assert value(s, "weightsync_bytes_received_total") > 0
                assert value(s, "weightsync_phase_seconds_count", phase="hook") == received
        out, err = demo.communicate(timeout=120)
        assert demo.returncode == 0, err
        assert '"verified":true' in out.splitlines()[-1]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_python_agents_count_what_they_serve(coordinator: ws.Coordinator, job_id: str) -> None:
    job(coordinator, job_id, verify=True)
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0, versions=2,
                             values="synthetic")
    receiver = ws.WeightReceiver(coordinator.address, job_id, metrics_port=0,
                                 metrics_host="127.0.0.1")
    try:
        receiver.allocate()
        receiver.connect()
        results = [receiver.update() for _ in range(2)]
        assert [r["version"] for r in results] == [1, 2]  # update() still returns its dict
        counted = receiver.metrics()
        assert counted["versions_received"] == 2 and counted["version_held"] == 2
        assert counted["phases"]["hook"]["count"] == 2
        served = scrape(f"http://127.0.0.1:{receiver.metrics_port}/metrics")
        assert value(served, "weightsync_versions_received_total") == 2
        assert value(served, "weightsync_bytes_received_total") == counted["bytes_received"] > 0
        assert value(served, "weightsync_registered_bytes") == counted["registered_bytes"] > 0
        out = trainer.result()
        assert out["ok"] and out["versions"] == [1, 2]
    finally:
        stop([trainer], [receiver])
