"""ws.derive_layout (issue 15) on CPU: layouts derived from parameter lists of a dense Llama /
Qwen3, a Qwen3-MoE and a DeepSeek-V3 (MLA) model, built from the committed config.json files
in tests/data/hf by the C++ name generator (src/layout/hf_config.cc: transformers' own names;
test_derive_hf.py checks them against real transformers modules where transformers is
installed); the built-in layouts they equal; modules on the meta device; a derived layout
travelling in the job spec and pushed through the real engine, bit-exact; every bad input
refused naming the tensor."""

from __future__ import annotations

import json
import os

import pytest
import torch

import weightsync as ws
from helpers import TrainerProcess, assert_bit_exact, job, nested_module, stop, trainer_weights
from weightsync import _core

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "hf")


def config(name: str) -> str:
    with open(os.path.join(CONFIGS, f"{name}.json")) as f:
        return f.read()


def trainer_params(name: str) -> list:
    """The transformers model's parameters (name, shape, dtype), from its config.json."""
    return _core.hf_parameters(config(name))


def engine_params(name: str, rules: str) -> list:
    """What the engine of `rules` holds for that model."""
    return _core.hf_parameters(config(name), rules)


def rule(layout: ws.Layout, dest: str) -> dict:
    for r in json.loads(layout.to_json())["rules"]:
        if r["dest"] == dest:
            return r
    raise KeyError(dest)


def builtin_sides(model: str) -> tuple[list, list]:
    b = ws.resolve_layout(model)
    return ([(s.name, s.shape, s.dtype) for s in b.sources],
            [(d.name, d.shape, d.dtype) for d in b.dests])


@pytest.mark.parametrize("model", ["qwen3-tiny", "llama-tiny"])
def test_dense_models_equal_the_builtin_layouts(model: str) -> None:
    builtin = _core.canonical_order(ws.resolve_layout(model))
    # From the HF config (trainer: transformers' names; engine: vLLM's) ...
    derived = ws.derive_layout(trainer_params(model), engine_params(model, "vllm"), "vllm",
                               name=model)
    assert derived.fingerprint == builtin.fingerprint
    # ... and from the built-in's own two sides.
    trainer, inference = builtin_sides(model)
    assert ws.derive_layout(trainer, inference, "vllm", name=model).fingerprint == \
        builtin.fingerprint


@pytest.mark.parametrize("model", ["llama-tiny", "qwen3-tiny", "qwen3-moe-tiny",
                                   "deepseek-v3-tiny"])
@pytest.mark.parametrize("rules", ["vllm", "hf-fp8"])
def test_three_architectures_round_trip(model: str, rules: str) -> None:
    derived = ws.derive_layout(trainer_params(model), engine_params(model, rules), rules)
    assert derived.name == f"derived-{rules}"
    assert derived.fingerprint == _core.derive_from_hf(config(model), rules,
                                                       f"derived-{rules}").fingerprint
    # derive -> JSON -> load -> the same fingerprint.
    assert ws.Layout.__name__ and _core.layout_from_json(derived.to_json()).fingerprint == \
        derived.fingerprint
    # The order of either side does not matter.
    shuffled = ws.derive_layout(list(reversed(trainer_params(model))),
                                list(reversed(engine_params(model, rules))), rules)
    assert shuffled.fingerprint == derived.fingerprint
    assert {s.name for s in derived.sources} == {p[0] for p in trainer_params(model)}


def test_moe_and_mla_rules() -> None:
    moe = ws.derive_layout(trainer_params("qwen3-moe-tiny"),
                           engine_params("qwen3-moe-tiny", "vllm"), "vllm")
    e = "model.layers.1.mlp.experts."
    w13 = rule(moe, e + "routed_experts.w13_weight")
    assert w13["sources"] == [e + "gate_up_proj"] and w13["expert"]
    assert w13["kind"] == "quantize_fp8" and w13["tp"] == "replicated"
    assert moe.dest("model.layers.1.mlp.gate.weight").dtype == "bf16"  # the router
    assert rule(moe, "model.layers.0.mlp.gate_up_proj.weight")["tp"] == "rows"  # mlp_only_layers
    assert moe.experts == 8

    mla = ws.derive_layout(trainer_params("deepseek-v3-tiny"),
                           engine_params("deepseek-v3-tiny", "vllm"), "vllm")
    a = "model.layers.2.self_attn."
    assert rule(mla, a + "fused_qkv_a_proj.weight")["sources"] == [
        a + "q_a_proj.weight", a + "kv_a_proj_with_mqa.weight"]
    assert mla.dest("model.layers.2.mlp.gate.e_score_correction_bias").dtype == "fp32"
    hf = ws.derive_layout(trainer_params("deepseek-v3-tiny"),
                          engine_params("deepseek-v3-tiny", "hf-fp8"), "hf-fp8")
    assert hf.dest(e + "gate_up_proj").dtype == "fp8_e4m3"
    assert hf.dest(e + "gate_up_proj_scale_inv").shape == [8, 2, 2]
    assert hf.dest("lm_head.weight").dtype == "bf16"  # modules_to_not_convert by default


class Qwen3Like(torch.nn.Module):
    """A 2-layer Qwen3 skeleton with transformers' module names, on the meta device: the
    parameters, a tied input/output embedding, and a non-persistent rotary buffer (not a
    weight)."""

    def __init__(self, device: str = "meta", fp8: bool = False) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.embed_tokens = torch.nn.Embedding(512, 256, device=device, dtype=torch.bfloat16)
        self.model.layers = torch.nn.ModuleList()
        for _ in range(2):
            layer = torch.nn.Module()
            layer.self_attn = torch.nn.Module()
            for n, out, inp in (("q_proj", 256, 256), ("k_proj", 128, 256), ("v_proj", 128, 256),
                                ("o_proj", 256, 256)):
                layer.self_attn.add_module(n, linear(out, inp, device, fp8))
            for n in ("q_norm", "k_norm"):
                layer.self_attn.add_module(n, norm(64, device))
            layer.mlp = torch.nn.Module()
            for n, out, inp in (("gate_proj", 512, 256), ("up_proj", 512, 256),
                                ("down_proj", 256, 512)):
                layer.mlp.add_module(n, linear(out, inp, device, fp8))
            layer.input_layernorm = norm(256, device)
            layer.post_attention_layernorm = norm(256, device)
            self.model.layers.append(layer)
        self.model.norm = norm(256, device)
        self.model.register_buffer("inv_freq", torch.zeros(32, device=device), persistent=False)
        self.lm_head = torch.nn.Linear(256, 512, bias=False, device=device, dtype=torch.bfloat16)
        self.lm_head.weight = self.model.embed_tokens.weight  # tied


def linear(out: int, inp: int, device: str, fp8: bool) -> torch.nn.Module:
    m = torch.nn.Linear(inp, out, bias=False, device=device, dtype=torch.bfloat16)
    if fp8:
        m.weight = torch.nn.Parameter(torch.empty(out, inp, device=device, dtype=torch.uint8),
                                      requires_grad=False)
        m.weight_scale_inv = torch.nn.Parameter(
            torch.empty(-(-out // 128), -(-inp // 128), device=device), requires_grad=False)
    return m


def norm(n: int, device: str) -> torch.nn.Module:
    m = torch.nn.Module()
    m.weight = torch.nn.Parameter(torch.empty(n, device=device, dtype=torch.bfloat16))
    return m


def test_modules_on_the_meta_device() -> None:
    trainer = Qwen3Like()
    # Torch without float8 dtypes (this CPU suite's torch 1.13) holds FP8 as uint8: listed as
    # (shape, dtype) pairs the inference side is described exactly.
    inference = {n: (tuple(p.shape), "fp8_e4m3" if p.dtype == torch.uint8 else p.dtype)
                 for n, p in Qwen3Like(fp8=True).named_parameters()}
    layout = ws.derive_layout(trainer, inference, "hf-fp8", name="q3-meta")
    names = {s.name for s in layout.sources}
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names  # tied once
    assert not any("inv_freq" in n for n in names)  # non-persistent buffers are not weights
    assert layout.dest("model.layers.1.mlp.down_proj.weight").dtype == "fp8_e4m3"
    assert layout.dest("model.layers.1.mlp.down_proj.weight_scale_inv").shape == [2, 4]
    # A persistent buffer is a weight (DeepSeek's e_score_correction_bias is one).
    trainer.model.register_buffer("bias_state", torch.zeros(8, device="meta"))
    inference["model.bias_state"] = ((8,), "fp32")
    assert ws.derive_layout(trainer, inference, "hf-fp8").has_source("model.bias_state")


def test_a_derived_layout_travels_in_the_job_spec(coordinator: ws.Coordinator,
                                                  job_id: str) -> None:
    layout = ws.derive_layout(trainer_params("qwen3-moe-tiny"),
                              engine_params("qwen3-moe-tiny", "vllm"), "vllm", name="q3moe")
    spec = job(coordinator, job_id, model=layout, engine_ranks=2, engine_ep=2)
    assert spec.model == "q3moe" and json.loads(spec.layout)["name"] == "q3moe"
    again = ws.read_job(coordinator.address, job_id)
    assert ws.job_layout(again).fingerprint == layout.fingerprint
    # Pushed through the real engine (a trainer process, two EP ranks over UCX), bit-exact
    # against the reference conversion of the trainer's tensors, two versions.
    seed, versions = 5, 2
    trainer = TrainerProcess(coordinator=coordinator.address, job=job_id, rank=0,
                             versions=versions, values="random", seed=seed)
    receivers = [ws.WeightReceiver(coordinator.address, job_id, engine=0, rank=k)
                 for k in range(2)]
    try:
        models = []
        for r in receivers:
            assert r.layout.fingerprint == layout.fingerprint
            models.append(nested_module({t.name: ws.torch_interop.empty(t.shape, t.dtype)
                                         for t in r.expected}))
            r.register(models[-1])
            r.start()
        for r in receivers:
            assert r.wait_for_version(versions, timeout=60) == versions
        want_sources = trainer_weights(layout, seed, versions)
        for r, model in zip(receivers, models):
            want = ws.reference_tensors(layout, r.peer, want_sources)
            got = dict(model.named_parameters()) | dict(model.named_buffers())
            assert assert_bit_exact({n: got[n] for n in want}, want, r.peer.name) > 0
        assert trainer.result()["ok"]
    finally:
        stop([trainer], receivers)


def test_bad_inputs_are_refused_naming_the_tensor() -> None:
    trainer, inference = builtin_sides("qwen3-tiny")
    with pytest.raises(ws.NotFoundError, match="unknown layout rule set 'tensorrt'"):
        ws.derive_layout(trainer, inference, "tensorrt")
    # Different architectures: a Llama trainer against a Qwen3 engine.
    llama, _ = builtin_sides("llama-tiny")
    with pytest.raises(ws.InvalidArgumentError,
                       match=r"inference tensor 'model\.layers\.0\.self_attn\.q_norm\.weight' "
                             r"\[64\] has no trainer source under rules vllm"):
        ws.derive_layout(llama, inference, "vllm")
    # Different sizes.
    big = [(n, [1024, 256] if n == "model.embed_tokens.weight" else s, d) for n, s, d in trainer]
    with pytest.raises(ws.InvalidArgumentError, match="different models or sizes"):
        ws.derive_layout(big, inference, "vllm")
    # A missing scale buffer.
    no_scale = [p for p in inference if p[0] != "model.layers.0.mlp.gate_up_proj.weight_scale_inv"]
    with pytest.raises(ws.InvalidArgumentError,
                       match=r"'model\.layers\.0\.mlp\.gate_up_proj\.weight' is fp8_e4m3 but has "
                             r"no scale tensor"):
        ws.derive_layout(trainer, no_scale, "vllm")
    # Fused parts that do not add up.
    short_k = [(n, [64, 256] if n.endswith("0.self_attn.k_proj.weight") else s, d)
               for n, s, d in trainer]
    with pytest.raises(ws.InvalidArgumentError,
                       match=r"'model\.layers\.0\.self_attn\.qkv_proj\.weight' has 512 rows, but "
                             r"its parts under rules vllm add up to 448"):
        ws.derive_layout(short_k, inference, "vllm")
    # Dtypes weightsync does not move, scalars, a rule set that is no string.
    with pytest.raises(ws.InvalidArgumentError, match=r"trainer tensor 'w' is torch\.float16"):
        ws.derive_layout({"w": torch.empty(4, 4, dtype=torch.float16)}, inference)
    with pytest.raises(ws.InvalidArgumentError, match=r"inference tensor 's' has shape \(\)"):
        ws.derive_layout(trainer, {"s": torch.empty(())})
    with pytest.raises(ws.InvalidArgumentError, match="rules must be a rule set name"):
        ws.derive_layout(trainer, inference, rules=None)
    with pytest.raises(ws.InvalidArgumentError, match="expected a tensor"):
        ws.derive_layout({"w": 3}, inference)
    # A derived layout takes no layer override.
    layout = ws.derive_layout(trainer, inference)
    with pytest.raises(ws.InvalidArgumentError, match="layers does not apply to a Layout"):
        ws.job_spec(model=layout, layers=2)
    # A spec whose layout document is broken fails where it is read, naming it.
    spec = ws.job_spec(model=layout)
    doc = json.loads(spec.layout)
    doc["rules"][0]["sources"] = ["nope"]
    spec.layout = json.dumps(doc)
    with pytest.raises(ws.InvalidArgumentError, match="job spec: 'layout'.*'nope'"):
        ws.job_layout(spec)
    assert ws.rule_sets() == ["hf-fp8", "vllm"]
