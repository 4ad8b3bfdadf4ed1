// Rule set "vllm": vLLM's in-memory parameters (checked against vLLM 0.33's own tables by
// tests/python/test_derive_vllm.py, run by scripts/test_vllm.sh):
// - fusions: the models' packed_modules_mapping / stacked_params_mapping / hf_to_vllm_mapper
//   (qkv_proj and gate_up_proj of Llama, Qwen2, Qwen3, Qwen3-MoE, DeepSeek's MHA; DeepSeek-V2/V3's
//   fused_qkv_a_proj when q_lora_rank is set; the DeepSeek-V3.2 / GLM-5 indexer's unquantized
//   wk_weights_proj);
// - experts: FusedMoE's w13_weight = [w1 (gate_proj); w3 (up_proj)] and w2_weight = down_proj,
//   stacked over experts, with *_weight_scale_inv for block FP8
//   (RoutedExperts.build_expert_params_mapping); since 0.33 they live in the MoE runner's
//   "routed_experts" submodule ("mlp.experts.routed_experts.w13_weight"); older vLLM (and the
//   built-in glm5 layouts) hold them as "mlp.experts.w13_weight";
// - TP: column-parallel (rows) and row-parallel (cols) linears as vLLM's model code builds them.

#include "layout/rules.h"

namespace weightsync::layout::rules {

RuleSet vllmRules() {
    RuleSet r;
    r.name = "vllm";
    r.engine = "vLLM";
    r.fusions = {
        {"qkv_proj", {"q_proj", "k_proj", "v_proj"}},
        {"gate_up_proj", {"gate_proj", "up_proj"}},
        {"fused_qkv_a_proj", {"q_a_proj", "kv_a_proj_with_mqa"}},
        {"wk_weights_proj", {"wk", "weights_proj"}, /*quantized=*/false},
    };
    r.expert_containers = {"routed_experts.", ""};
    r.experts = {
        {"w13_weight",
         {{"gate_up_proj"}, {"gate_proj", "up_proj"}, {"w1", "w3"}},
         {"gate_proj", "up_proj"},
         TpSplit::kRows},
        {"w2_weight", {{"down_proj"}, {"w2"}}, {"down_proj"}, TpSplit::kCols},
    };
    r.rows_modules = {"qkv_proj",     "q_proj",       "k_proj",  "v_proj",
                      "gate_up_proj", "gate_proj",    "up_proj", "q_b_proj",
                      "kv_b_proj",    "embed_tokens", "lm_head"};
    r.cols_modules = {"o_proj", "down_proj"};
    r.keep_bf16_modules = {"lm_head"};
    return r;
}

}  // namespace weightsync::layout::rules
