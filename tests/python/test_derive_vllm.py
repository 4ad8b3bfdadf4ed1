"""The "vllm" rule set of ws.derive_layout against the installed vLLM's own tables (issue 15):
the models' packed_modules_mapping, DeepSeek's stacked_params_mapping, Qwen3-MoE's
hf_to_vllm_mapper, FusedMoE's expert params mapping (RoutedExperts.build_expert_params_mapping),
the FP8 MoE method's scale names, and which linears are column- or row-parallel.

Skipped without vLLM; run by scripts/test_vllm.sh (which holds a venv with the real vLLM):
``scripts/test_vllm.sh test_derive_vllm.py``. Nothing here needs a GPU: the tables are read
from vLLM's classes and, where they are local to a function, from its source (ast).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

vllm = pytest.importorskip("vllm")

from weightsync import _core  # noqa: E402

RULES = _core.rule_set_tables("vllm")

MODELS = {  # module -> the CausalLM classes whose tables the rule set covers
    "llama": ["LlamaForCausalLM"],
    "qwen2": ["Qwen2ForCausalLM"],
    "qwen3": ["Qwen3ForCausalLM"],
    "qwen3_moe": ["Qwen3MoeForCausalLM"],
    "deepseek_v2": ["DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"],
}


def models_module(name: str):
    return importlib.import_module(f"vllm.model_executor.models.{name}")


def source_tree(obj) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def check_fusion(fused: str, parts: list[str], where: str) -> None:
    assert fused in RULES["fusions"], f"{where}: vLLM fuses {parts} into '{fused}', the rule set " \
                                      "does not"
    assert RULES["fusions"][fused] == parts, \
        f"{where}: '{fused}' is {parts} in vLLM, {RULES['fusions'][fused]} in the rule set"


def test_packed_modules_mapping() -> None:
    checked = 0
    for module, classes in MODELS.items():
        for cls_name in classes:
            cls = getattr(models_module(module), cls_name)
            for fused, parts in getattr(cls, "packed_modules_mapping", {}).items():
                check_fusion(fused, list(parts), f"{cls_name}.packed_modules_mapping")
                checked += 1
            # DeepSeek adds its optional fusions in __init__ (self.packed_modules_mapping[k] = v).
            for node in ast.walk(source_tree(cls)):
                if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript)
                        and ast.unparse(node.targets[0].value) == "self.packed_modules_mapping"):
                    fused = ast.literal_eval(node.targets[0].slice)
                    check_fusion(fused, ast.literal_eval(node.value), f"{cls_name}.__init__")
                    checked += 1
    assert checked >= 8


def test_stacked_params_mapping_of_deepseek() -> None:
    # (param_name, shard_name, shard_id) lists local to DeepseekV2Model.load_weights.
    tree = source_tree(models_module("deepseek_v2").DeepseekV2Model.load_weights)
    groups: dict[str, list[tuple]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.List):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if ast.unparse(target).endswith("_mapping"):
                for fused, part, shard in ast.literal_eval(node.value):
                    groups.setdefault(fused, []).append((shard, part))
    assert {"gate_up_proj", "fused_qkv_a_proj", "qkv_proj", "wk_weights_proj"} <= set(groups)
    order = {"q": 0, "k": 1, "v": 2}
    for fused, shards in groups.items():
        parts = [p for _, p in sorted(shards, key=lambda s: order.get(s[0], s[0]))]
        check_fusion(fused, parts, "DeepseekV2Model.load_weights")
    # The indexer fusion holds an unquantized linear (quant_config=None): generated bf16.
    indexer = inspect.getsource(models_module("deepseek_v2"))
    assert "wk_weights_proj = MergedColumnParallelLinear" in indexer.replace("\n", " ").replace(
        "self.", "")


def test_qwen3_moe_weights_mapper() -> None:
    mapper = models_module("qwen3_moe").Qwen3MoeModel.hf_to_vllm_mapper
    groups: dict[str, list[tuple]] = {}
    for orig, (new, shard) in mapper.orig_to_new_stacked.items():  # ".mlp.gate_proj": (...)
        groups.setdefault(new, []).append((shard, orig.rsplit(".", 1)[-1]))
    order = {"q": 0, "k": 1, "v": 2}
    for new, shards in groups.items():
        check_fusion(new.rsplit(".", 1)[-1],
                     [p for _, p in sorted(shards, key=lambda s: order.get(s[0], s[0]))],
                     f"Qwen3MoeModel.hf_to_vllm_mapper ({new})")
    assert len(groups) >= 3


def test_expert_params_mapping() -> None:
    from vllm.model_executor.layers.fused_moe.routed_experts import RoutedExperts

    mapping = RoutedExperts.build_expert_params_mapping(
        "gate_proj", "down_proj", "up_proj", num_experts=4, include_fused=True)
    container = RULES["expert_containers"][0]
    w13, w2 = f"experts.{container}w13_", f"experts.{container}w2_"
    per_expert: dict[str, dict[str, str]] = {}
    fused: dict[str, list[tuple]] = {}
    for param, weight, expert, shard in mapping:
        if weight.startswith("experts.") and weight.split(".")[1].isdigit():
            if weight.split(".")[2] == "gate_up_proj":
                continue  # per-expert fused gate_up checkpoints: not a trainer layout
            per_expert.setdefault(param, {})[shard] = weight.split(".")[2]
        else:
            fused.setdefault(param, []).append((expert, shard, weight))
    # Per expert: w13 = [w1 = gate_proj; w3 = up_proj], w2 = down_proj.
    assert per_expert[w13] == {"w1": "gate_proj", "w3": "up_proj"}
    assert per_expert[w2] == {"w2": "down_proj"}
    experts = RULES["experts"]
    assert experts["w13_weight"]["per_expert"] == ["gate_proj", "up_proj"]
    assert experts["w2_weight"]["per_expert"] == ["down_proj"]
    assert ["gate_proj", "up_proj"] in experts["w13_weight"]["sources"]
    assert ["down_proj"] in experts["w2_weight"]["sources"]
    # Stacked (transformers >= 5) checkpoints: experts.gate_up_proj splits into w1 then w3.
    assert sorted(fused[f"{w13}weight"]) == [(0, "w1", "experts.gate_up_proj"),
                                             (1, "w3", "experts.gate_up_proj")]
    assert fused[f"{w2}weight"] == [(0, "w2", "experts.down_proj")]
    assert ["gate_up_proj"] in experts["w13_weight"]["sources"]
    assert experts["w13_weight"]["tp"] == "rows" and experts["w2_weight"]["tp"] == "cols"


def test_fp8_scale_names() -> None:
    from vllm.model_executor.layers.quantization import fp8

    text = inspect.getsource(fp8)
    # Block-quantized linears and MoE weights carry "<weight>_scale_inv".
    assert 'register_parameter("weight_scale_inv"' in text
    assert '"weight_scale_inv" if self.block_quant' in text.replace("\n", " ").replace("  ", "")
    assert 'f"w13_{self.weight_scale_name}"' in text


def test_column_and_row_parallel_modules() -> None:
    rows = {"ColumnParallelLinear", "MergedColumnParallelLinear", "QKVParallelLinear",
            "VocabParallelEmbedding", "ParallelLMHead"}
    cols = {"RowParallelLinear"}
    seen = {}
    for module in MODELS:
        for node in ast.walk(ast.parse(inspect.getsource(models_module(module)))):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and isinstance(node.targets[0], ast.Attribute)
                    and isinstance(node.targets[0].value, ast.Name)
                    and node.targets[0].value.id == "self"):
                cls = ast.unparse(node.value.func).rsplit(".", 1)[-1]
                replicated = any(k.arg == "disable_tp" and ast.unparse(k.value) == "True"
                                 for k in node.value.keywords)
                if cls in rows | cols and not replicated:
                    seen.setdefault(node.targets[0].attr, set()).add(cls)
    for name, classes in seen.items():
        if name in RULES["rows_modules"]:
            assert classes <= rows, f"{name}: vLLM builds {classes}, the rule set splits rows"
        elif name in RULES["cols_modules"]:
            assert classes <= cols, f"{name}: vLLM builds {classes}, the rule set splits cols"
        else:
            raise AssertionError(f"vLLM splits '{name}' ({classes}); the rule set replicates it")
    assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "q_b_proj", "kv_b_proj"} <= set(seen)
