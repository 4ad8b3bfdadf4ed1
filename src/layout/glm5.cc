#include "layout/glm5.h"

#include "common/error.h"
#include "layout/builder.h"
#include "layout/limits.h"

#include <fmt/format.h>

namespace weightsync::layout {

Glm5Config glm5Config(std::string_view variant) {
    Glm5Config c;
    c.name = std::string(variant);
    if (variant == "glm5") return c;
    if (variant == "glm5-medium") {
        c.vocab = 32768;
        c.hidden = 2048;
        c.layers = 8;
        c.first_dense = 1;
        c.dense_inter = 8192;
        c.moe_inter = 1024;
        c.experts = 32;
        c.heads = 16;
        c.q_lora = 1024;
        c.kv_lora = 512;
        c.rope = 64;
        c.nope = 128;
        c.v_head = 128;
        c.index_heads = 16;
        c.index_head_dim = 128;
        return c;
    }
    if (variant == "glm5-tiny") {
        c.vocab = 512;
        c.hidden = 256;
        c.layers = 2;
        c.first_dense = 1;
        c.dense_inter = 512;
        c.moe_inter = 128;
        c.experts = 8;
        c.heads = 4;
        c.q_lora = 128;
        c.kv_lora = 64;
        c.rope = 32;
        c.nope = 32;
        c.v_head = 32;
        c.index_heads = 4;
        c.index_head_dim = 32;
        return c;
    }
    if (variant == "glm5-aligned") {
        // Every quantized source has a multiple of 512 rows: 128-aligned shards at FSDP 2 and 4.
        c.vocab = 1024;
        c.hidden = 512;
        c.layers = 2;
        c.first_dense = 1;
        c.dense_inter = 1024;
        c.moe_inter = 512;
        c.experts = 8;
        c.heads = 4;
        c.q_lora = 512;
        c.kv_lora = 448;
        c.rope = 64;
        c.nope = 64;
        c.v_head = 64;
        c.index_heads = 1;
        c.index_head_dim = 512;
        return c;
    }
    fail(Errc::kNotFound, "unknown GLM-5 variant '{}' (glm5, glm5-medium, glm5-tiny, glm5-aligned)",
         variant);
}

namespace {

void addAttention(LayoutBuilder &b, const Glm5Config &c, const std::string &p) {
    const DType bf16 = DType::kBF16;
    const std::string a = p + "self_attn.";
    b.same(p + "input_layernorm.weight", {c.hidden}, bf16, bf16);
    b.same(p + "post_attention_layernorm.weight", {c.hidden}, bf16, bf16);
    b.same(a + "q_a_layernorm.weight", {c.q_lora}, bf16, bf16);
    b.same(a + "kv_a_layernorm.weight", {c.kv_lora}, bf16, bf16);

    b.source(a + "q_a_proj.weight", {c.q_lora, c.hidden});
    b.source(a + "kv_a_proj_with_mqa.weight", {c.kv_lora + c.rope, c.hidden});
    const std::string qkv_a = a + "fused_qkv_a_proj.weight";
    b.quantize(qkv_a, scaleName(qkv_a), {a + "q_a_proj.weight", a + "kv_a_proj_with_mqa.weight"},
               TpSplit::kReplicated);

    const auto linear = [&](const std::string &name, Shape shape, TpSplit tp) {
        b.source(name, std::move(shape));
        b.quantize(name, scaleName(name), {name}, tp);
    };
    linear(a + "q_b_proj.weight", {c.heads * (c.nope + c.rope), c.q_lora}, TpSplit::kRows);
    linear(a + "kv_b_proj.weight", {c.heads * (c.nope + c.v_head), c.kv_lora}, TpSplit::kRows);
    linear(a + "o_proj.weight", {c.hidden, c.heads * c.v_head}, TpSplit::kCols);

    const std::string ix = a + "indexer.";
    linear(ix + "wq_b.weight", {c.index_heads * c.index_head_dim, c.q_lora}, TpSplit::kReplicated);
    linear(ix + "wk.weight", {c.index_head_dim, c.hidden}, TpSplit::kReplicated);
    // vLLM's LayerNorm keeps the indexer's k_norm in fp32.
    b.same(ix + "k_norm.weight", {c.index_head_dim}, bf16, DType::kF32);
    b.same(ix + "k_norm.bias", {c.index_head_dim}, bf16, DType::kF32);
    b.same(ix + "weights_proj.weight", {c.index_heads, c.hidden}, bf16, bf16);
}

void addGatedMlp(LayoutBuilder &b, const std::string &gate, const std::string &up,
                 const std::string &down, const std::string &fused, const std::string &down_dest,
                 int64_t inter, int64_t hidden) {
    b.source(gate, {inter, hidden});
    b.source(up, {inter, hidden});
    b.source(down, {hidden, inter});
    b.quantize(fused, scaleName(fused), {gate, up}, TpSplit::kRows);
    b.quantize(down_dest, scaleName(down_dest), {down}, TpSplit::kCols);
}

void addSparseMlp(LayoutBuilder &b, const Glm5Config &c, const std::string &p) {
    const std::string m = p + "mlp.";
    b.source(m + "router.gate.weight", {c.experts, c.hidden});
    b.copy(m + "gate.weight", {m + "router.gate.weight"}, DType::kBF16);
    b.source(m + "expert_bias", {c.experts}, DType::kF32);
    b.copy(m + "gate.e_score_correction_bias", {m + "expert_bias"}, DType::kF32);

    addGatedMlp(b, m + "shared_expert.w1", m + "shared_expert.w3", m + "shared_expert.w2",
                m + "shared_experts.gate_up_proj.weight", m + "shared_experts.down_proj.weight",
                c.moe_inter, c.hidden);

    b.source(m + "experts.w1", {c.experts, c.moe_inter, c.hidden}, DType::kBF16, true);
    b.source(m + "experts.w3", {c.experts, c.moe_inter, c.hidden}, DType::kBF16, true);
    b.source(m + "experts.w2", {c.experts, c.hidden, c.moe_inter}, DType::kBF16, true);
    const std::string w13 = m + "experts.w13_weight";
    const std::string w2 = m + "experts.w2_weight";
    b.quantize(w13, scaleName(w13), {m + "experts.w1", m + "experts.w3"}, TpSplit::kRows, true);
    b.quantize(w2, scaleName(w2), {m + "experts.w2"}, TpSplit::kCols, true);
}

}  // namespace

Layout glm5Layout(const Glm5Config &c) {
    check(c.layers > 0 && c.layers <= limits::kMaxLayers && c.first_dense >= 0 &&
              c.first_dense <= c.layers,
          Errc::kInvalidArgument, "GLM-5 config '{}': bad layer counts ({} layers, {} dense)",
          c.name, c.layers, c.first_dense);
    LayoutBuilder b(c.name);
    const DType bf16 = DType::kBF16;
    b.same("model.embed_tokens.weight", {c.vocab, c.hidden}, bf16, bf16, TpSplit::kRows);
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        addAttention(b, c, p);
        if (i < c.first_dense) {
            addGatedMlp(b, p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                        p + "mlp.down_proj.weight", p + "mlp.gate_up_proj.weight",
                        p + "mlp.down_proj.weight", c.dense_inter, c.hidden);
        } else {
            addSparseMlp(b, c, p);
        }
    }
    b.same("model.norm.weight", {c.hidden}, bf16, bf16);
    b.same("lm_head.weight", {c.vocab, c.hidden}, bf16, bf16, TpSplit::kRows);
    return std::move(b).build();
}

}  // namespace weightsync::layout
