#include "layout/dense.h"

#include "common/error.h"
#include "layout/builder.h"
#include "layout/limits.h"

#include <fmt/format.h>

namespace weightsync::layout {

DenseConfig denseConfig(std::string_view variant) {
    DenseConfig c;
    c.name = std::string(variant);
    if (variant == "qwen3-8b") return c;
    if (variant == "qwen3-tiny" || variant == "llama-tiny") {
        c.vocab = 512;
        c.hidden = 256;
        c.layers = 2;
        c.inter = 512;
        c.heads = 4;
        c.kv_heads = 2;
        c.head_dim = 64;
        c.qk_norm = variant == "qwen3-tiny";
        return c;
    }
    fail(Errc::kNotFound, "unknown dense variant '{}' (qwen3-8b, qwen3-tiny, llama-tiny)", variant);
}

Layout denseLayout(const DenseConfig &c) {
    check(c.layers > 0 && c.layers <= limits::kMaxLayers && c.kv_heads > 0 &&
              c.heads % c.kv_heads == 0,
          Errc::kInvalidArgument, "dense config '{}': bad layers or head counts", c.name);
    LayoutBuilder b(c.name);
    const DType bf16 = DType::kBF16;
    b.same("model.embed_tokens.weight", {c.vocab, c.hidden}, bf16, bf16, TpSplit::kRows);
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        const std::string a = p + "self_attn.";
        b.same(p + "input_layernorm.weight", {c.hidden}, bf16, bf16);
        b.same(p + "post_attention_layernorm.weight", {c.hidden}, bf16, bf16);
        b.source(a + "q_proj.weight", {c.heads * c.head_dim, c.hidden});
        b.source(a + "k_proj.weight", {c.kv_heads * c.head_dim, c.hidden});
        b.source(a + "v_proj.weight", {c.kv_heads * c.head_dim, c.hidden});
        const std::string qkv = a + "qkv_proj.weight";
        b.quantize(qkv, scaleName(qkv),
                   {a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"}, TpSplit::kRows);
        b.source(a + "o_proj.weight", {c.hidden, c.heads * c.head_dim});
        b.quantize(a + "o_proj.weight", scaleName(a + "o_proj.weight"), {a + "o_proj.weight"},
                   TpSplit::kCols);
        if (c.qk_norm) {
            b.same(a + "q_norm.weight", {c.head_dim}, bf16, bf16);
            b.same(a + "k_norm.weight", {c.head_dim}, bf16, bf16);
        }
        const std::string m = p + "mlp.";
        b.source(m + "gate_proj.weight", {c.inter, c.hidden});
        b.source(m + "up_proj.weight", {c.inter, c.hidden});
        b.source(m + "down_proj.weight", {c.hidden, c.inter});
        b.quantize(m + "gate_up_proj.weight", scaleName(m + "gate_up_proj.weight"),
                   {m + "gate_proj.weight", m + "up_proj.weight"}, TpSplit::kRows);
        b.quantize(m + "down_proj.weight", scaleName(m + "down_proj.weight"),
                   {m + "down_proj.weight"}, TpSplit::kCols);
    }
    b.same("model.norm.weight", {c.hidden}, bf16, bf16);
    b.same("lm_head.weight", {c.vocab, c.hidden}, bf16, bf16, TpSplit::kRows);
    return std::move(b).build();
}

}  // namespace weightsync::layout
