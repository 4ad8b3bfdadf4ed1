#pragma once
// A dense Llama / Qwen3-style decoder (fused qkv_proj and gate_up_proj, FP8 block-quantized
// linears), to show the layout model is not GLM-specific.

#include "layout/layout.h"

#include <string_view>

namespace weightsync::layout {

struct DenseConfig {
    std::string name;
    int64_t vocab = 151936;
    int64_t hidden = 4096;
    int64_t layers = 36;
    int64_t inter = 12288;
    int64_t heads = 32;
    int64_t kv_heads = 8;
    int64_t head_dim = 128;
    bool qk_norm = true;  // Qwen3 has per-head q_norm / k_norm; Llama does not
};

/// "qwen3-8b", "qwen3-tiny", "llama-tiny".
DenseConfig denseConfig(std::string_view variant);
Layout denseLayout(const DenseConfig &config);

}  // namespace weightsync::layout
