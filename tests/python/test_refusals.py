"""Tensors the engine cannot use in place are refused with a clear, typed error naming them,
never silently copied (a registered copy would receive the writes while the live tensor stays
stale, or dangle once freed). A refusal is local (the agent may retry); peers
that wait for it name it."""

from __future__ import annotations

import json

import pytest
import torch

import weightsync as ws
from helpers import assert_bit_exact, job, nested_module, trainer_weights

Q_B = "model.layers.0.self_attn.q_b_proj.weight"          # bf16 [256, 128], FSDP-sharded rows
EXPERTS = "model.layers.1.mlp.experts.w1"                  # bf16 [8, 128, 256] experts
Q_B_DEST = "model.layers.0.self_attn.q_b_proj.weight"      # fp8 [256, 128]
Q_B_SCALE = "model.layers.0.self_attn.q_b_proj.weight_scale_inv"


@pytest.fixture
def sharded_sender(coordinator: ws.Coordinator, job_id: str) -> ws.WeightSender:
    """Rank 0 of a FSDP 2 x EP 2 trainer."""
    job(coordinator, job_id, trainer_ranks=2, trainer_ep=2, engine_ranks=2, engine_ep=2)
    return ws.WeightSender(coordinator.address, job_id, rank=0)


@pytest.fixture
def receiver(coordinator: ws.Coordinator, job_id: str) -> ws.WeightReceiver:
    job(coordinator, job_id)
    return ws.WeightReceiver(coordinator.address, job_id)


def bf16(*shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.bfloat16)


def test_trainer_refuses_non_contiguous(sharded_sender: ws.WeightSender) -> None:
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}' is not contiguous"):
        sharded_sender.register({Q_B: bf16(128, 256).t()})


def test_trainer_refuses_views_of_a_larger_storage(sharded_sender: ws.WeightSender) -> None:
    big = bf16(512, 128)
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}' is a view into a larger storage"):
        sharded_sender.register({Q_B: big[:256]})
    with pytest.raises(ws.InvalidArgumentError, match="offset 32768 elements"):
        sharded_sender.register({Q_B: big[256:]})


def test_trainer_refuses_wrong_dtype_and_shape(sharded_sender: ws.WeightSender) -> None:
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"'{Q_B}' is fp32, the layout declares it bf16"):
        sharded_sender.register({Q_B: torch.zeros(256, 128)})
    with pytest.raises(ws.InvalidArgumentError, match=r"has shape \(255, 128\)"):
        sharded_sender.register({Q_B: bf16(255, 128)})
    with pytest.raises(ws.InvalidArgumentError, match="expected a torch.Tensor"):
        sharded_sender.register({Q_B: [1, 2, 3]})


def test_trainer_refuses_unknown_names_unless_told(sharded_sender: ws.WeightSender) -> None:
    with pytest.raises(ws.InvalidArgumentError, match="not in layout 'glm5-tiny': model.extra"):
        sharded_sender.register({"model.extra": bf16(4)})
    sharded_sender.register({"model.extra": bf16(4)}, strict=False)
    sharded_sender.register({"trainer.q_b": bf16(256, 128)},
                            rename=lambda n: Q_B if n == "trainer.q_b" else None)


def test_trainer_refuses_shards_it_does_not_own(sharded_sender: ws.WeightSender) -> None:
    assert sharded_sender.owned(Q_B) == (0, 128)
    assert sharded_sender.owned(EXPERTS) == (0, 4)  # EP rank 0 of 2: experts 0..3
    sharded_sender.register({Q_B: ws.Shard(bf16(128, 128), index=0, count=2)})
    with pytest.raises(ws.MismatchError, match=r"holds experts \[4, 8\), but trainer rank 0 .* "
                                               r"owns experts \[0, 4\)"):
        sharded_sender.register({EXPERTS: ws.Shard(bf16(4, 128, 256), offset=4)})
    with pytest.raises(ws.InvalidArgumentError, match="registered twice"):
        sharded_sender.register({Q_B: ws.Shard(bf16(128, 128), index=0, count=2)})


def test_trainer_refuses_unsupported_dtensor_placements(sharded_sender: ws.WeightSender) -> None:
    class Placement:
        def __init__(self, kind: str, dim: int = 0) -> None:
            self.kind, self.dim = kind, dim

        def is_shard(self) -> bool:
            return self.kind == "shard"

        def is_replicate(self) -> bool:
            return False

        def is_partial(self) -> bool:
            return self.kind == "partial"

    class Mesh:
        def get_coordinate(self) -> list[int]:
            return [0]

        def size(self, dim: int) -> int:
            return 2

    class DTensor:
        def __init__(self, placement: Placement) -> None:
            self.placements, self.device_mesh, self.shape = (placement,), Mesh(), (256, 128)

        def to_local(self) -> torch.Tensor:
            return bf16(128, 128)

    with pytest.raises(ws.UnsupportedError, match="Partial"):
        sharded_sender.register({Q_B: DTensor(Placement("partial"))})
    with pytest.raises(ws.UnsupportedError, match="dim 1"):
        sharded_sender.register({Q_B: DTensor(Placement("shard", 1))})


def test_connect_refuses_missing_tensors_and_gathers_it_cannot_do(
        sharded_sender: ws.WeightSender) -> None:
    sharded_sender.register({Q_B: ws.Shard(bf16(128, 128), index=0, count=2)})
    with pytest.raises(ws.InvalidArgumentError, match="were not registered"):
        sharded_sender.connect()


def test_sharded_tensor_without_a_gather_is_refused_when_the_plan_gathers_it(
        coordinator: ws.Coordinator, job_id: str) -> None:
    job(coordinator, job_id, trainer_ranks=2)  # tiny tensors: the plan gathers every source
    sender = ws.WeightSender(coordinator.address, job_id, rank=1)
    tensors = {s.name: torch.zeros(tuple(s.shape), dtype=getattr(torch, {"bf16": "bfloat16",
               "fp32": "float32"}[s.dtype])) for s in sender.layout.sources}
    start, stop = sender.owned(Q_B)
    tensors[Q_B] = ws.Shard(tensors[Q_B][start:stop].clone(), index=1, count=2)
    sender.register(tensors)
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}' is sharded, and the plan needs it"):
        sender.connect()


def test_receiver_refuses_missing_wrong_and_non_owning_tensors(receiver: ws.WeightReceiver) -> None:
    tensors = {t.name: ws.torch_interop.empty(t.shape, t.dtype) for t in receiver.expected}
    partial = dict(tensors)
    del partial[Q_B_SCALE]
    with pytest.raises(ws.MismatchError,
                       match=f"1 tensors of layout 'glm5-tiny' are missing: {Q_B_SCALE}"):
        receiver.register(partial)
    with pytest.raises(ws.MismatchError, match=f"'{Q_B_DEST}' is \\[256, 128\\] torch.bfloat16, "
                                               "the layout expects \\[256, 128\\] fp8_e4m3"):
        receiver.register({**tensors, Q_B_DEST: bf16(256, 128)})
    with pytest.raises(ws.MismatchError, match="layout expects \\[256, 128\\]"):
        receiver.register({**tensors, Q_B_DEST: torch.zeros(128, 256, dtype=torch.uint8)})
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B_DEST}' is not contiguous"):
        receiver.register({**tensors, Q_B_DEST: torch.zeros(128, 256, dtype=torch.uint8).t()})
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B_DEST}' is a view"):
        receiver.register({**tensors, Q_B_DEST: torch.zeros(512, 128, dtype=torch.uint8)[:256]})
    with pytest.raises(ws.MismatchError, match="not in layout 'glm5-tiny': extra"):
        receiver.register({**tensors, "extra": bf16(2)}, strict=True)


def test_receiver_notices_reallocated_parameters(receiver: ws.WeightReceiver) -> None:
    model = nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                           for t in receiver.expected})
    receiver.register(model)
    receiver._check_unchanged()
    param = model.get_parameter(Q_B_DEST)
    param.data = param.data.clone()  # e.g. an engine re-allocating at load time
    with pytest.raises(ws.MismatchError, match=f"'{Q_B_DEST}' changed since it was registered"):
        receiver._check_unchanged()


def test_a_refusal_is_named_by_the_peers_that_wait_for_it(coordinator: ws.Coordinator,
                                                         job_id: str) -> None:
    # A rank that refuses its own input may still fix it and retry, so it does not fail the job;
    # a peer that times out waiting for it names the refusal.
    job(coordinator, job_id, init_timeout=2.0)
    sender = ws.WeightSender(coordinator.address, job_id, rank=0)
    with pytest.raises(ws.InvalidArgumentError):
        sender.register({Q_B: bf16(128, 256).t()})
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    receiver.allocate()
    with pytest.raises(ws.TimeoutError,
                       match=f"trainer0 refused its input: trainer rank 0: .*'{Q_B}' is not "
                             "contiguous"):
        receiver.connect()


def test_a_corrected_retry_after_a_refusal_joins_the_job(coordinator: ws.Coordinator,
                                                        job_id: str) -> None:
    spec = job(coordinator, job_id)
    sender = ws.WeightSender(coordinator.address, job_id, rank=0)
    weights = trainer_weights(sender.layout, seed=5, version=1)
    bad = dict(weights)
    bad[Q_B] = bad[Q_B].t().contiguous().t()  # same values, not contiguous
    with pytest.raises(ws.InvalidArgumentError, match="not contiguous"):
        sender.register(bad)
    sender.register(weights)  # nothing of the refused call stuck: every tensor registers again
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    receiver.allocate()
    receiver.start()
    try:
        assert sender.push(1)["writes"] > 0
        assert receiver.wait_for_version(1, timeout=30) == 1
        want = ws.reference_tensors(receiver.layout, receiver.peer, weights)
        assert_bit_exact(receiver.tensors, want, "after a corrected retry")
        assert spec.steps >= 1
    finally:
        receiver.close(timeout=5)
        sender.close()


def test_every_trainer_refusal_names_the_tensor(sharded_sender: ws.WeightSender) -> None:
    """Issue 14: wrong dtype or shape, a missing, extra or non-contiguous tensor: each error
    names the tensor (and the rank for whole-job problems)."""
    cases = [
        ({Q_B: torch.zeros(256, 128)}, "is fp32, the layout declares it bf16"),
        ({Q_B: bf16(256, 128, 1)}, r"has shape \(256, 128, 1\)"),
        ({Q_B: bf16(256)}, r"has shape \(256,\)"),
        ({Q_B: bf16(128, 256).t()}, "is not contiguous"),
        ({Q_B: bf16(256, 256)[:, :128]}, "is not contiguous"),
        ({Q_B: ws.Shard(bf16(128, 128).t(), index=0, count=2)}, "is not contiguous"),
    ]
    for tensors, why in cases:
        with pytest.raises(ws.WeightsyncError, match=f"'{Q_B}'.*{why}|{why}.*'{Q_B}'"):
            sharded_sender.register(tensors)
    with pytest.raises(ws.InvalidArgumentError,
                       match="trainer rank 0: 2 tensors are not in layout 'glm5-tiny': "
                             "model.extra, lm_head.bias"):
        sharded_sender.register({"model.extra": bf16(4), "lm_head.bias": bf16(512)})


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32])
def test_trainer_refuses_foreign_dtypes_naming_the_tensor(sharded_sender: ws.WeightSender,
                                                          dtype: torch.dtype) -> None:
    with pytest.raises(ws.InvalidArgumentError, match=f"'{Q_B}'"):
        sharded_sender.register({Q_B: torch.zeros(256, 128, dtype=dtype)})


def test_trainer_missing_tensors_are_listed_by_name(coordinator: ws.Coordinator,
                                                    job_id: str) -> None:
    job(coordinator, job_id)
    sender = ws.WeightSender(coordinator.address, job_id, rank=0)
    tensors = {s.name: torch.zeros(tuple(s.shape), dtype={"bf16": torch.bfloat16,
                                                          "fp32": torch.float32}[s.dtype])
               for s in sender.layout.sources}
    del tensors[Q_B]
    del tensors[EXPERTS]
    sender.register(tensors)
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"trainer rank 0: 2 tensors of layout 'glm5-tiny' were not "
                             f"registered: .*{Q_B}"):
        sender.connect()


def test_every_receiver_refusal_names_the_tensor(receiver: ws.WeightReceiver) -> None:
    tensors = {t.name: ws.torch_interop.empty(t.shape, t.dtype) for t in receiver.expected}
    for bad, why in ((torch.zeros(256, 128, dtype=torch.float64), "float64"),
                     (torch.zeros(256, 129, dtype=torch.uint8), r"\[256, 129\]"),
                     (torch.zeros(256, dtype=torch.uint8), r"\[256\]"),
                     (torch.zeros(256, 256, dtype=torch.uint8)[:, :128], "is not contiguous")):
        with pytest.raises(ws.WeightsyncError, match=f"'{Q_B_DEST}'.*{why}|{why}.*'{Q_B_DEST}'"):
            receiver.register({**tensors, Q_B_DEST: bad})
    with pytest.raises(ws.MismatchError, match=f"are missing: {Q_B_DEST}, {Q_B_SCALE}"):
        receiver.register({n: t for n, t in tensors.items() if n not in (Q_B_DEST, Q_B_SCALE)})
    with pytest.raises(ws.MismatchError, match="1 parameters are not in layout 'glm5-tiny': "
                                               "model.extra"):
        receiver.register({**tensors, "model.extra": bf16(2)}, strict=True)


def test_a_trainer_rank_keeps_its_tensors_on_one_device(coordinator: ws.Coordinator,
                                                        job_id: str) -> None:
    # The core's own check (the Python package checks the torch devices first): pieces are not
    # dereferenced when they are set, so device ordinals can be declared here without a GPU.
    job(coordinator, job_id)
    layout = ws.resolve_layout("glm5-tiny")
    sources = ws._core.TensorSources(layout, ws.TrainerMesh(), 0)
    held = {s.name: torch.zeros(tuple(s.shape), dtype=torch.bfloat16 if s.dtype == "bf16"
                                else torch.float32) for s in layout.sources}
    first, second = layout.sources[0], layout.sources[1]
    assert sources.device == -1
    sources.set_shard(first.name, held[first.name].data_ptr(), first.dtype, list(first.shape),
                      0, 0)
    assert sources.device == 0
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"trainer tensor '{second.name}' is on the CPU, but "
                             f"'{first.name}' of this rank is on cuda:0"):
        sources.set_shard(second.name, held[second.name].data_ptr(), second.dtype,
                          list(second.shape), 0, -1)
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"gathered tensor '{second.name}' is on cuda:1, but this rank's "
                             "tensors are on cuda:0"):
        sources.set_full(second.name, held[second.name].data_ptr(), second.dtype,
                         list(second.shape), 1)


def test_an_inference_rank_keeps_its_tensors_on_one_device(coordinator: ws.Coordinator,
                                                           job_id: str) -> None:
    job(coordinator, job_id)
    receiver = ws.WeightReceiver(coordinator.address, job_id)
    tensors = {t.name: ws.torch_interop.empty(t.shape, t.dtype) for t in receiver.expected}
    refs = [ws.torch_interop.check_tensor(t.name, tensors[t.name], expected_dtype=t.dtype)
            for t in receiver.expected]
    core = [r.as_core_tuple() for r in refs]
    name, pointer, shape, dtype, _ = core[1]
    core[1] = (name, pointer, shape, dtype, 0)  # declared on GPU 0 (never touched: refused first)
    agent = ws._core.InferenceAgent(receiver._store, 0, 0, core, None)
    with pytest.raises(ws.InvalidArgumentError,
                       match=f"'{name}' is on device 0, but '{core[0][0]}' is on device -1"):
        agent.init()


def test_a_parameter_replaced_in_the_module_is_caught(coordinator: ws.Coordinator,
                                                      job_id: str) -> None:
    job(coordinator, job_id)
    sender = ws.WeightSender(coordinator.address, job_id, rank=0)
    model = nested_module({s.name: torch.zeros(tuple(s.shape), dtype=torch.bfloat16
                                               if s.dtype == "bf16" else torch.float32)
                           for s in sender.layout.sources})
    sender.register(model)
    sender._check_unchanged()
    *path, leaf = Q_B.split(".")
    owner = model.get_submodule(".".join(path))
    setattr(owner, leaf, torch.nn.Parameter(torch.zeros(256, 128, dtype=torch.bfloat16)))
    with pytest.raises(ws.MismatchError, match=f"'{Q_B}' changed since it was registered"):
        sender._check_unchanged()
    delattr(owner, leaf)
    with pytest.raises(ws.MismatchError, match=f"'{Q_B}' .* is no longer in the registered"):
        sender._check_unchanged()


def test_auto_jobs_keep_ucx_options_under_its_name() -> None:
    spec = ws.job_spec(ucx_transports="posix,sysv,self")
    assert spec.transport == "auto"
    assert json.loads(spec.transport_options) == {"ucx": {"transports": "posix,sysv,self"}}
    spec = ws.job_spec(transport="ucx", ucx_transports="tcp,self")
    assert json.loads(spec.transport_options) == {"transports": "tcp,self"}
