"""job_spec() checks every argument, and the job as a whole, before anything is published
(issue 19): a typed error naming the argument, never a spec that fails later in every agent."""

from __future__ import annotations

import json
import math

import pytest

import weightsync as ws
from weightsync import _core


@pytest.mark.parametrize("value", [-5, 0, 0.0, math.nan, math.inf, -math.inf, 1e300])
def test_step_and_init_timeouts_must_be_finite_and_positive(value: float) -> None:
    for name in ("step_timeout", "init_timeout"):
        with pytest.raises(ws.InvalidArgumentError, match=f"job_spec: {name} must be a finite"):
            ws.job_spec(**{name: value})


def test_timeouts_over_the_limit_and_of_the_wrong_type() -> None:
    with pytest.raises(ws.InvalidArgumentError,
                       match=r"'step_timeout_ms' must be an integer in \[1, 604800000\]"):
        ws.job_spec(step_timeout=30 * 24 * 3600.0)
    with pytest.raises(ws.InvalidArgumentError, match="step_timeout must be a number of seconds"):
        ws.job_spec(step_timeout="300")
    with pytest.raises(ws.InvalidArgumentError, match="init_timeout must be a number"):
        ws.job_spec(init_timeout=None)
    assert ws.job_spec(step_timeout=0.5).step_timeout == 0.5


def test_unknown_model_is_not_found_and_names_it() -> None:
    with pytest.raises(ws.NotFoundError, match="unknown model 'nope'"):
        ws.job_spec(model="nope")
    with pytest.raises(ws.NotFoundError, match="cannot open layout file 'missing.json'"):
        ws.job_spec(model="missing.json")
    with pytest.raises(ws.InvalidArgumentError, match="job_spec: model must be a non-empty string"):
        ws.job_spec(model="")
    with pytest.raises(ws.InvalidArgumentError, match="job_spec: model must be a non-empty string"):
        ws.job_spec(model=None)


@pytest.mark.parametrize("name", ["trainer_ranks", "trainer_ep", "trainer_replicas",
                                  "engine_ranks", "engine_tp", "engine_ep", "engines", "layers"])
def test_counts_must_be_positive_integers(name: str) -> None:
    for bad, why in ((0, "must be >= 1"), (-2, "must be >= 1"), (2.0, "must be an integer"),
                     (True, "must be an integer"), ("2", "must be an integer"),
                     (2**40, "must be <= ")):
        with pytest.raises(ws.InvalidArgumentError, match=f"job_spec: {name} {why}"):
            ws.job_spec(**{name: bad})


def test_sizes_seed_and_flags() -> None:
    with pytest.raises(ws.InvalidArgumentError, match="gather_threshold_bytes must be >= 0"):
        ws.job_spec(gather_threshold_bytes=-1)
    with pytest.raises(ws.InvalidArgumentError, match="stage_bytes must be an integer"):
        ws.job_spec(stage_bytes=1.5)
    with pytest.raises(ws.InvalidArgumentError, match="seed must be >= 0"):
        ws.job_spec(seed=-1)
    with pytest.raises(ws.InvalidArgumentError, match="seed must be <= "):
        ws.job_spec(seed=2**64)
    assert ws.job_spec(seed=2**64 - 1).seed == 2**64 - 1
    with pytest.raises(ws.InvalidArgumentError, match="verify must be True or False"):
        ws.job_spec(verify=1)
    with pytest.raises(ws.InvalidArgumentError, match="pipeline must be True or False"):
        ws.job_spec(pipeline="no")
    assert ws.job_spec().pipeline and not ws.job_spec(pipeline=False).pipeline
    assert not ws.JobSpec.from_json(ws.job_spec(pipeline=False).to_json()).pipeline
    with pytest.raises(ws.InvalidArgumentError, match="'transport' must be one of"):
        ws.job_spec(transport="carrier-pigeon")
    with pytest.raises(ws.InvalidArgumentError, match="ucx_transports must be a non-empty"):
        ws.job_spec(ucx_transports="")
    with pytest.raises(ws.InvalidArgumentError, match="engines must be a count >= 1 or"):
        ws.job_spec(engines=[])
    with pytest.raises(ws.InvalidArgumentError, match="engines must be a count >= 1 or"):
        ws.job_spec(engines=["e0"])


def test_topologies_the_model_cannot_split() -> None:
    # glm5-tiny has 8 experts.
    with pytest.raises(ws.InvalidArgumentError, match="not divisible by inference EP 3"):
        ws.job_spec(engine_ranks=3, engine_ep=3)
    with pytest.raises(ws.InvalidArgumentError, match="not divisible by trainer EP 16"):
        ws.job_spec(trainer_ranks=16, trainer_ep=16)
    with pytest.raises(ws.InvalidArgumentError, match="EP must be 1"):
        ws.job_spec(engine_ranks=4, engine_ep=2)
    with pytest.raises(ws.InvalidArgumentError, match="limit of 16384 trainer ranks"):
        ws.job_spec(trainer_ranks=20000)
    with pytest.raises(ws.InvalidArgumentError, match="expert map lists an expert twice"):
        ws.job_spec(engines=[ws.EngineSpec(ranks=2, ep=2, expert_maps=[[0, 1, 2, 3],
                                                                        [4, 5, 6, 6]])])


def test_a_refused_spec_publishes_nothing(coordinator: ws.Coordinator, job_id: str) -> None:
    with pytest.raises(ws.InvalidArgumentError):
        ws.publish_job(coordinator, job_id, ws.job_spec(step_timeout=-5))
    assert coordinator.job_store(job_id).list("") == []


def test_from_json_refuses_bad_values_with_the_field() -> None:
    good = json.loads(ws.job_spec().to_json())
    ws.JobSpec.from_json(json.dumps(good))
    for key, value, needle in (("step_timeout_ms", 0, "'step_timeout_ms'"),
                               ("steps", 2.5, "'steps'"),
                               ("seed", -1, "'seed'"),
                               ("model", "", "'model'"),
                               ("device", "tpu", "'device'")):
        doc = dict(good, **{key: value})
        with pytest.raises(ws.InvalidArgumentError, match=needle):
            ws.JobSpec.from_json(json.dumps(doc))
    doc = dict(good)
    del doc["mesh"]
    with pytest.raises(ws.InvalidArgumentError, match="missing field 'mesh'"):
        ws.JobSpec.from_json(json.dumps(doc))


def test_layout_documents_from_python_are_checked_too() -> None:
    doc = json.loads(ws.resolve_layout("glm5-tiny").to_json())
    doc["sources"][0]["shape"] = [0, 256]
    with pytest.raises(ws.InvalidArgumentError, match=r"'shape'\[0\] must be an integer"):
        _core.layout_from_json(json.dumps(doc))
    with pytest.raises(ws.InvalidArgumentError, match=r"--layers must be in \[1, 4096\]"):
        ws.resolve_layout("glm5-tiny", 10**6)
