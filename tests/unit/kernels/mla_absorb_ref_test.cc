// The MLA-absorb reference on hand-computed values: dequantization, bf16 rounding, and where
// each element lands in W_UV [heads, kv_lora, v] and W_UK_T [heads, nope, kv_lora].

#include "kernels/mla/mla_absorb_ref.h"
#include "common/dtype.h"
#include "common/error.h"

#include <gtest/gtest.h>

#include <vector>

namespace weightsync::kernels {
namespace {

TEST(KernelsMlaAbsorbRef, DequantizesAndPermutes) {
    // 2 heads x (nope 1 + v 2) = 6 rows, kv_lora 2. e4m3 0x38 = 1.0, 0x40 = 2.0, 0xb8 = -1.0,
    // 0x00 = 0; one scale block: scale_inv 0.5.
    const std::vector<uint8_t> w = {0x38, 0x40,   // h0 nope row
                                    0xb8, 0x00,   // h0 v row 0
                                    0x40, 0x38,   // h0 v row 1
                                    0x00, 0x38,   // h1 nope row
                                    0x40, 0x40,   // h1 v row 0
                                    0xb8, 0xb8};  // h1 v row 1
    const std::vector<float> scales = {0.5f};
    std::vector<uint16_t> uv(size_t{2} * 2 * 2);
    std::vector<uint16_t> uk(size_t{2} * 1 * 2);
    mlaAbsorbRef(w.data(), scales.data(), {6, 2, 1, 2}, uv.data(), uk.data());
    const auto f = [](uint16_t b) { return bf16BitsToF32(b); };
    // W_UK_T[h][j][l] = row (h, j) at column l.
    EXPECT_EQ(f(uk[0]), 0.5f);
    EXPECT_EQ(f(uk[1]), 1.0f);
    EXPECT_EQ(f(uk[2]), 0.0f);
    EXPECT_EQ(f(uk[3]), 0.5f);
    // W_UV[h][l][jv] = row (h, nope + jv) at column l.
    EXPECT_EQ(f(uv[0]), -0.5f);  // h0 l0 v0
    EXPECT_EQ(f(uv[1]), 1.0f);   // h0 l0 v1
    EXPECT_EQ(f(uv[2]), 0.0f);   // h0 l1 v0
    EXPECT_EQ(f(uv[3]), 0.5f);   // h0 l1 v1
    EXPECT_EQ(f(uv[4]), 1.0f);   // h1 l0 v0
    EXPECT_EQ(f(uv[5]), -0.5f);  // h1 l0 v1
    EXPECT_THROW(mlaAbsorbRef(w.data(), scales.data(), {5, 2, 1, 2}, uv.data(), uk.data()), Error);
}

}  // namespace
}  // namespace weightsync::kernels
