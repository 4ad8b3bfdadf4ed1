// The reference converter against hand-built expectations: concatenation order, expert
// selection, TP slices and the fp32 exceptions.

#include "convert/reference.h"
#include "kernels/fp8/block_quant_ref.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

#include <cstring>

namespace weightsync::convert {
namespace {

const layout::Conversion &conversion(const layout::Layout &l, const std::string &dest) {
    for (const layout::Conversion &c : l.conversions()) {
        if (c.dest == dest) return c;
    }
    throw std::runtime_error("no conversion " + dest);
}

TEST(Reference, CopiesAndCastsElementwise) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const SyntheticGenerator gen(l, 3, 1);
    planner::PeerSpec peer;
    peer.experts = {0, 1, 2, 3, 4, 5, 6, 7};
    std::vector<std::byte> v;
    std::vector<std::byte> s;
    // bf16 -> fp32 (indexer k_norm).
    const std::string k_norm = "model.layers.0.self_attn.indexer.k_norm.weight";
    referenceConvert(l, conversion(l, k_norm), peer, gen, v, s);
    std::vector<uint16_t> src(32);
    gen.fill(static_cast<uint32_t>(l.sourceIndex(k_norm)), 0, 1, 0, 32, src.data());
    ASSERT_EQ(v.size(), 32u * 4);
    for (size_t i = 0; i < 32; ++i) {
        float got = 0;
        std::memcpy(&got, v.data() + i * 4, 4);
        EXPECT_EQ(got, bf16BitsToF32(src[i]));
    }
    EXPECT_TRUE(s.empty());
}

TEST(Reference, FusedExpertsPickTheRanksExpertsInMapOrder) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const SyntheticGenerator gen(l, 3, 1);
    planner::PeerSpec peer;
    peer.expert_parallel = true;
    peer.experts = {6, 2};
    std::vector<std::byte> v;
    std::vector<std::byte> s;
    referenceConvert(l, conversion(l, "model.layers.1.mlp.experts.w13_weight"), peer, gen, v, s);
    // Expected: for expert 6 then 2, quantize [w1[g]; w3[g]] (256 x 256).
    const int64_t inter = 128;
    const int64_t hidden = 256;
    std::vector<uint16_t> fused(static_cast<size_t>(2 * inter * hidden));
    std::vector<uint8_t> q(fused.size());
    std::vector<float> sc(size_t{2} * 2);
    ASSERT_EQ(v.size(), 2 * q.size());
    ASSERT_EQ(s.size(), 2 * sc.size() * 4);
    for (size_t li = 0; li < 2; ++li) {
        const int64_t g = peer.experts[li];
        gen.fill(static_cast<uint32_t>(l.sourceIndex("model.layers.1.mlp.experts.w1")), g, 1, 0,
                 inter, fused.data());
        gen.fill(static_cast<uint32_t>(l.sourceIndex("model.layers.1.mlp.experts.w3")), g, 1, 0,
                 inter, fused.data() + inter * hidden);
        kernels::blockQuantizeFp8Ref(
            kernels::denseConstView(fused.data(), DType::kBF16, 1, 2 * inter, hidden),
            kernels::denseView(q.data(), DType::kF8E4M3, 1, 2 * inter, hidden),
            kernels::denseView(sc.data(), DType::kF32, 1, 2, 2));
        EXPECT_EQ(std::memcmp(v.data() + li * q.size(), q.data(), q.size()), 0) << "expert " << g;
        EXPECT_EQ(std::memcmp(s.data() + li * sc.size() * 4, sc.data(), sc.size() * 4), 0);
    }
}

TEST(Reference, TensorParallelSliceOfFusedRows) {
    const layout::Layout l = layout::resolveLayout("glm5-aligned");
    const SyntheticGenerator gen(l, 3, 1);
    planner::PeerSpec full_peer;
    full_peer.experts = {0, 1, 2, 3, 4, 5, 6, 7};
    planner::PeerSpec half = full_peer;
    half.tp = 2;
    half.tp_rank = 1;
    const std::string dest = "model.layers.0.mlp.gate_up_proj.weight";
    std::vector<std::byte> full_v, full_s, half_v, half_s;
    referenceConvert(l, conversion(l, dest), full_peer, gen, full_v, full_s);
    referenceConvert(l, conversion(l, dest), half, gen, half_v, half_s);
    // Full is [gate 1024; up 1024] x 512 fp8; TP rank 1 holds gate rows 512.. and up rows 512..
    const size_t row = 512;
    ASSERT_EQ(half_v.size(), 1024 * row);
    EXPECT_EQ(std::memcmp(half_v.data(), full_v.data() + 512 * row, 512 * row), 0);
    EXPECT_EQ(std::memcmp(half_v.data() + 512 * row, full_v.data() + 1536 * row, 512 * row), 0);
    // Scales [16, 4] full -> [8, 4]: block rows 4..8 then 12..16.
    const size_t block_row = size_t{4} * 4;  // 4 block columns of fp32 scales
    ASSERT_EQ(half_s.size(), 8 * block_row);
    EXPECT_EQ(std::memcmp(half_s.data(), full_s.data() + 4 * block_row, 4 * block_row), 0);
    EXPECT_EQ(
        std::memcmp(half_s.data() + 4 * block_row, full_s.data() + 12 * block_row, 4 * block_row),
        0);
}

}  // namespace
}  // namespace weightsync::convert
