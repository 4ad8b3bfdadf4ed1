#pragma once
// GLM-5 MoE-DSA (GlmMoeDsaForCausalLM) trainer layout -> vLLM FP8 kernel layout: every per-layer
// tensor of the dense and the sparse (MoE) layers, and the non-layer tensors (embed_tokens, the
// final norm, lm_head), which an update must carry too or the inference copies go stale. The
// tensor table follows shared/docs/reference-design.md section 5.2 (outside this repository),
// which lists the per-layer tensors only.

#include "layout/layout.h"

#include <string_view>

namespace weightsync::layout {

struct Glm5Config {
    std::string name;
    int64_t vocab = 154880;
    int64_t hidden = 6144;
    int64_t layers = 78;
    int64_t first_dense = 3;  // layers [0, first_dense) are dense, the rest sparse (MoE)
    int64_t dense_inter = 12288;
    int64_t moe_inter = 2048;
    int64_t experts = 256;
    int64_t heads = 64;
    int64_t q_lora = 2048;
    int64_t kv_lora = 512;
    int64_t rope = 64;
    int64_t nope = 192;
    int64_t v_head = 256;
    int64_t index_heads = 32;
    int64_t index_head_dim = 128;
};

/// "glm5" (real dimensions), "glm5-medium" (a few GB, the CPU performance shape), "glm5-tiny",
/// "glm5-aligned" (every quantized source splits into 128-row-aligned shards at 2 and 4 shards).
Glm5Config glm5Config(std::string_view variant);
Layout glm5Layout(const Glm5Config &config);

}  // namespace weightsync::layout
