#pragma once
// Parameter lists of Hugging Face architectures from their config.json alone (shapes only, no
// weights): the names, shapes and dtypes transformers >= 5 gives a model's parameters and
// persistent buffers, and what an inference engine of a rule set holds for it. Used by
// `weightsync layout --from-hf CONFIG.json --rules vllm|hf-fp8` and the derivation tests.
//
// Architectures: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM,
// DeepseekV3ForCausalLM (MLA, with or without q_lora_rank). MoE experts are stacked tensors
// ("mlp.experts.gate_up_proj" [E, 2I, H], "mlp.experts.down_proj" [E, H, I]) as transformers >= 5
// holds them.

#include "layout/derive.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace weightsync::layout {

/// What a parameter is, which decides whether an engine quantizes it.
enum class HfRole : uint8_t {
    kLinear,     // nn.Linear weight [out, in]
    kExperts,    // stacked expert projection [E, out, in]
    kEmbedding,  // nn.Embedding
    kNorm,       // RMSNorm / LayerNorm weight or bias
    kRouter,     // MoE router weight [E, H]
    kBias,       // linear bias
    kBuffer,     // persistent buffer (e.g. DeepSeek's e_score_correction_bias, fp32)
};

struct HfParam {
    ParamInfo param;
    HfRole role = HfRole::kLinear;
};

struct HfModel {
    std::string architecture;
    std::vector<HfParam> params;  // module order
    /// quantization_config.modules_to_not_convert of the config, if any.
    std::vector<std::string> modules_to_not_convert;
};

std::vector<std::string> hfArchitectures();

/// The model a config.json describes. Error(kInvalidArgument) naming the field for a missing or
/// mistyped one; Error(kUnsupported) for an architecture not listed above.
HfModel hfModel(const nlohmann::json &config);
HfModel loadHfConfig(const std::string &path);

/// The trainer's parameters (bf16, fp32 buffers): transformers' own names.
std::vector<ParamInfo> hfTrainerParams(const HfModel &model);
/// What the engine of rule set `rules` holds for the model: fusions and expert stacking named as
/// the rule set does, linears and experts FP8 with their scales except the rule set's and the
/// config's modules_to_not_convert, embeddings, norms, routers, biases and buffers unchanged.
std::vector<ParamInfo> hfTargetParams(const HfModel &model, std::string_view rules);

/// deriveLayout(hfTrainerParams(model), hfTargetParams(model, rules), rules, name).
Layout deriveFromHf(const HfModel &model, std::string_view rules, const std::string &name);

}  // namespace weightsync::layout
