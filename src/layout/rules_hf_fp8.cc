// Rule set "hf-fp8": a Hugging Face model or checkpoint quantized to 128x128 block FP8, as
// transformers' FineGrainedFP8Config (weight_block_size [128, 128]) and the DeepSeek-V3 / GLM FP8
// checkpoints hold it: every converted linear keeps its module name, its `weight` becomes
// float8_e4m3fn and gains an fp32 `weight_scale_inv` of [ceil(rows/128), ceil(cols/128)];
// transformers >= 5's stacked experts (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj`)
// become FP8 with `experts.gate_up_proj_scale_inv` / `experts.down_proj_scale_inv`; checkpoints
// with per-expert modules (`experts.{e}.gate_proj.weight`) keep them. Embeddings, norms, routers,
// biases and modules_to_not_convert (lm_head by default) stay as they are. Nothing is fused,
// except trainers that keep experts as two stacked tensors (gate_proj / up_proj, or w1 / w3)
// feeding transformers' fused gate_up_proj.

#include "layout/rules.h"

namespace weightsync::layout::rules {

RuleSet hfFp8Rules() {
    RuleSet r;
    r.name = "hf-fp8";
    r.engine = "transformers block FP8";
    r.expert_containers = {""};
    r.experts = {
        {"gate_up_proj",
         {{"gate_proj", "up_proj"}, {"w1", "w3"}},
         {"gate_proj", "up_proj"},
         TpSplit::kReplicated},
        {"down_proj", {{"w2"}}, {"down_proj"}, TpSplit::kReplicated},
    };
    r.rows_modules = {"q_proj",   "k_proj",    "v_proj",       "gate_proj", "up_proj",
                      "q_b_proj", "kv_b_proj", "embed_tokens", "lm_head"};
    r.cols_modules = {"o_proj", "down_proj"};
    r.keep_bf16_modules = {"lm_head"};
    return r;
}

}  // namespace weightsync::layout::rules
