#include "common/error.h"
#include "layout/dense.h"
#include "layout/glm5.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

namespace weightsync::layout {
namespace {

struct Row {
    std::string dest;
    Shape shape;
    DType dtype;
    Shape scale;  // empty when not quantized
};

void expectRow(const Layout &l, const Row &row) {
    SCOPED_TRACE(row.dest);
    ASSERT_TRUE(l.hasDest(row.dest));
    const DestTensor &d = l.dest(row.dest);
    EXPECT_EQ(d.shape, row.shape);
    EXPECT_EQ(d.dtype, row.dtype);
    if (!row.scale.empty()) {
        const DestTensor &s = l.dest(row.dest + "_scale_inv");
        EXPECT_EQ(s.shape, row.scale);
        EXPECT_EQ(s.dtype, DType::kF32);
    } else {
        EXPECT_FALSE(l.hasDest(row.dest + "_scale_inv"));
    }
}

// The reference design's table (section 5.2), GLM-5 dimensions.
TEST(Glm5Layout, MatchesReferenceTableForSparseLayer) {
    const Layout l = glm5Layout(glm5Config("glm5"));
    const std::string p = "model.layers.3.";
    const DType f8 = DType::kF8E4M3;
    const DType bf = DType::kBF16;
    const DType f32 = DType::kF32;
    const std::vector<Row> rows = {
        {p + "input_layernorm.weight", {6144}, bf, {}},
        {p + "post_attention_layernorm.weight", {6144}, bf, {}},
        {p + "self_attn.q_a_layernorm.weight", {2048}, bf, {}},
        {p + "self_attn.kv_a_layernorm.weight", {512}, bf, {}},
        {p + "self_attn.fused_qkv_a_proj.weight", {2624, 6144}, f8, {21, 48}},
        {p + "self_attn.q_b_proj.weight", {16384, 2048}, f8, {128, 16}},
        {p + "self_attn.kv_b_proj.weight", {28672, 512}, f8, {224, 4}},
        {p + "self_attn.o_proj.weight", {6144, 16384}, f8, {48, 128}},
        {p + "self_attn.indexer.wq_b.weight", {4096, 2048}, f8, {32, 16}},
        {p + "self_attn.indexer.wk.weight", {128, 6144}, f8, {1, 48}},
        {p + "self_attn.indexer.k_norm.weight", {128}, f32, {}},
        {p + "self_attn.indexer.k_norm.bias", {128}, f32, {}},
        {p + "self_attn.indexer.weights_proj.weight", {32, 6144}, bf, {}},
        {p + "mlp.gate.weight", {256, 6144}, bf, {}},
        {p + "mlp.gate.e_score_correction_bias", {256}, f32, {}},
        {p + "mlp.shared_experts.gate_up_proj.weight", {4096, 6144}, f8, {32, 48}},
        {p + "mlp.shared_experts.down_proj.weight", {6144, 2048}, f8, {48, 16}},
        {p + "mlp.experts.w13_weight", {256, 4096, 6144}, f8, {256, 32, 48}},
        {p + "mlp.experts.w2_weight", {256, 6144, 2048}, f8, {256, 48, 16}},
    };
    for (const Row &r : rows) expectRow(l, r);
    EXPECT_FALSE(l.hasDest(p + "mlp.gate_up_proj.weight"));
    // The trainer keeps the routing bias in fp32; everything else is bf16.
    EXPECT_EQ(l.source(p + "mlp.expert_bias").dtype, f32);
    EXPECT_EQ(l.source(p + "mlp.experts.w1").expert_dim, 0);
    EXPECT_EQ(l.source(p + "mlp.experts.w1").shape, (Shape{256, 2048, 6144}));
}

TEST(Glm5Layout, DenseLayersAndNonLayerTensors) {
    const Layout l = glm5Layout(glm5Config("glm5"));
    const std::string p = "model.layers.2.";
    expectRow(l, {p + "mlp.gate_up_proj.weight", {24576, 6144}, DType::kF8E4M3, {192, 48}});
    expectRow(l, {p + "mlp.down_proj.weight", {6144, 12288}, DType::kF8E4M3, {48, 96}});
    EXPECT_FALSE(l.hasDest(p + "mlp.experts.w13_weight"));
    EXPECT_FALSE(l.hasDest(p + "mlp.gate.weight"));
    // The non-layer tensors: an update that skips them leaves the inference copies stale.
    expectRow(l, {"model.embed_tokens.weight", {154880, 6144}, DType::kBF16, {}});
    expectRow(l, {"model.norm.weight", {6144}, DType::kBF16, {}});
    expectRow(l, {"lm_head.weight", {154880, 6144}, DType::kBF16, {}});
    // 13 base + 2 dense rows x 3 layers, 13 + 6 sparse rows x 75 layers, 3 non-layer tensors;
    // plus a scale tensor for each quantized row.
    const size_t weights = 3 * 15 + 75 * 19 + 3;
    const size_t scales = 3 * (6 + 2) + 75 * (6 + 4);
    EXPECT_EQ(l.dests().size(), weights + scales);
    EXPECT_EQ(l.conversions().size(), weights);
}

TEST(Glm5Layout, AlignedConfigShardsOnBlockBoundaries) {
    const Layout l = glm5Layout(glm5Config("glm5-aligned"));
    for (const Conversion &c : l.conversions()) {
        if (c.kind != ConvKind::kQuantizeFp8 || c.expert) continue;
        for (const std::string &s : c.sources) {
            SCOPED_TRACE(s);
            const int64_t rows = l.source(s).shape[0];
            EXPECT_EQ(rows % (int64_t{4} * 128), 0);
        }
    }
}

TEST(DenseLayout, FusesQkvAndGateUp) {
    const Layout l = denseLayout(denseConfig("qwen3-8b"));
    const std::string p = "model.layers.0.";
    expectRow(
        l, {p + "self_attn.qkv_proj.weight", {4096 + 1024 + 1024, 4096}, DType::kF8E4M3, {48, 32}});
    expectRow(l, {p + "mlp.gate_up_proj.weight", {24576, 4096}, DType::kF8E4M3, {192, 32}});
    expectRow(l, {p + "self_attn.q_norm.weight", {128}, DType::kBF16, {}});
    const Layout llama = denseLayout(denseConfig("llama-tiny"));
    EXPECT_FALSE(llama.hasDest(p + "self_attn.q_norm.weight"));
}

TEST(Registry, EveryBuiltinValidatesAndLayersOverride) {
    for (const std::string &name : builtinLayoutNames()) {
        SCOPED_TRACE(name);
        const Layout l = resolveLayout(name, 2);
        EXPECT_FALSE(l.fingerprint().empty());
        EXPECT_TRUE(l.hasDest("model.layers.1.input_layernorm.weight"));
        EXPECT_FALSE(l.hasDest("model.layers.2.input_layernorm.weight"));
    }
    try {
        (void)resolveLayout("gpt-17");
        FAIL() << "expected an error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kNotFound);
        EXPECT_NE(std::string(e.what()).find("gpt-17"), std::string::npos);
    }
}

TEST(Layout, FingerprintTracksShapes) {
    Glm5Config a = glm5Config("glm5-tiny");
    Glm5Config b = a;
    b.kv_lora = 128;
    EXPECT_EQ(glm5Layout(a).fingerprint(), glm5Layout(a).fingerprint());
    EXPECT_NE(glm5Layout(a).fingerprint(), glm5Layout(b).fingerprint());
}

TEST(Layout, RejectsUnalignedFusedFp8Part) {
    Glm5Config c = glm5Config("glm5-tiny");
    c.q_lora = 100;  // the first part of fused_qkv_a_proj would end mid scale block
    try {
        (void)glm5Layout(c);
        FAIL() << "expected an error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("fused_qkv_a_proj"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace weightsync::layout
