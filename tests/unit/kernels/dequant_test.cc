// Dequantization error bound of the block format on random data.
//
// Bound used, per element with y = x / s (|y| <= 448 up to one fp32 rounding):
//   |y| >= 2^-6 (normal e4m3):    |e4m3(y) - y| <= 2^-4 |y|   (3 mantissa bits: half an ulp)
//   |y| <  2^-6 (subnormal e4m3): |e4m3(y) - y| <= 2^-10      (half the subnormal spacing 2^-9)
// so |e4m3ToF32(q) * s - x| <= max(2^-4 |x|, 2^-10 s) * (1 + 2^-19), the last factor covering the
// fp32 rounding of x / s (the test dequantizes in double, exactly). Over a block this is at most
// amax / 16 = 28 s. The test also checks that the bound is nearly attained, i.e. it is the bound.

#include "kernels/fp8/block_quant_ref.h"
#include "unit/kernels/kernels_test_util.h"

#include <gtest/gtest.h>

#include <cmath>

namespace weightsync::kernels {
namespace {

TEST(KernelsDequant, ErrorWithinHalfUlpOfE4m3) {
    testing::HostTensor<uint16_t> x(DType::kBF16, 2, 384, 640);
    testing::fillRandomBf16(x, 2024, 30, 30);
    testing::HostTensor<uint8_t> q(DType::kF8E4M3, 2, 384, 640);
    auto s = testing::scalesFor(2, 384, 640);
    blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
    double worst_rel = 0;  // max |err| / bound, over normal-range elements
    int64_t normal = 0;
    for (int64_t g = 0; g < x.g; ++g) {
        for (int64_t r = 0; r < x.r; ++r) {
            for (int64_t c = 0; c < x.c; ++c) {
                const double xv = bf16BitsToF32(x.at(g, r, c));
                const double sv = s.at(g, r / kFp8BlockSize, c / kFp8BlockSize);
                const double deq = static_cast<double>(e4m3ToF32(q.at(g, r, c))) * sv;
                const double bound =
                    std::max(std::ldexp(std::fabs(xv), -4), std::ldexp(sv, -10)) * (1 + 0x1p-19);
                ASSERT_LE(std::fabs(deq - xv), bound)
                    << "g=" << g << " r=" << r << " c=" << c << " x=" << xv << " s=" << sv;
                ASSERT_LE(std::fabs(deq - xv), 28 * sv);
                if (std::fabs(xv) >= std::ldexp(sv, -6)) {
                    worst_rel = std::max(worst_rel, std::fabs(deq - xv) / bound);
                    ++normal;
                }
            }
        }
    }
    EXPECT_GT(normal, x.g * x.r * x.c / 2);
    EXPECT_GT(worst_rel, 0.9);  // the bound is tight: some element sits near a midpoint
}

TEST(KernelsDequant, BlockMaximumIsRepresentedAlmostExactly) {
    // The largest element of every block maps to +-448 (or just below), so it dequantizes to
    // within one fp32 rounding of itself.
    testing::HostTensor<uint16_t> x(DType::kBF16, 1, 256, 256);
    testing::fillRandomBf16(x, 11);
    testing::HostTensor<uint8_t> q(DType::kF8E4M3, 1, 256, 256);
    auto s = testing::scalesFor(1, 256, 256);
    blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
    for (int64_t br = 0; br < 2; ++br) {
        for (int64_t bc = 0; bc < 2; ++bc) {
            int64_t best_r = 0, best_c = 0;
            float amax = -1;
            for (int64_t r = br * 128; r < br * 128 + 128; ++r) {
                for (int64_t c = bc * 128; c < bc * 128 + 128; ++c) {
                    const float v = std::fabs(bf16BitsToF32(x.at(0, r, c)));
                    if (v > amax) amax = v, best_r = r, best_c = c;
                }
            }
            EXPECT_EQ(q.at(0, best_r, best_c) & 0x7f, 0x7e);
            EXPECT_NEAR(448.0 * s.at(0, br, bc), amax, amax * 1e-6);
        }
    }
}

}  // namespace
}  // namespace weightsync::kernels
