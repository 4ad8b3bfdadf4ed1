// e4m3 encoding: exhaustive over bf16, random fp32, hand-picked values; the reciprocal quotient.

#include "kernels/fp8/block_quant_ref.h"
#include "kernels/fp8/quotient.h"
#include "unit/kernels/kernels_test_util.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace weightsync::kernels {
namespace {

using testing::slowE4m3;

TEST(KernelsE4m3, HandPickedValues) {
    EXPECT_EQ(f32ToE4m3(0.0f), 0x00);
    EXPECT_EQ(f32ToE4m3(-0.0f), 0x80);
    EXPECT_EQ(f32ToE4m3(1.0f), 0x38);
    EXPECT_EQ(f32ToE4m3(-1.0f), 0xb8);
    EXPECT_EQ(f32ToE4m3(448.0f), 0x7e);
    EXPECT_EQ(f32ToE4m3(-448.0f), 0xfe);
    EXPECT_EQ(f32ToE4m3(460.0f), 0x7e);  // rounds down to 448
    EXPECT_EQ(f32ToE4m3(464.0f), 0x7e);  // midpoint 448|480: even code, and 480 does not exist
    EXPECT_EQ(f32ToE4m3(1e30f), 0x7e);   // saturates
    EXPECT_EQ(f32ToE4m3(-std::numeric_limits<float>::infinity()), 0xfe);
    EXPECT_EQ(f32ToE4m3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
    EXPECT_EQ(f32ToE4m3(0x1p-6f), 0x08);   // smallest normal
    EXPECT_EQ(f32ToE4m3(0x1p-9f), 0x01);   // smallest subnormal
    EXPECT_EQ(f32ToE4m3(0x1p-10f), 0x00);  // midpoint 0|2^-9 -> even (0)
    EXPECT_EQ(f32ToE4m3(-0x1p-10f), 0x80);
    EXPECT_EQ(f32ToE4m3(0x1.000002p-10f), 0x01);  // just above the midpoint
    EXPECT_EQ(f32ToE4m3(3 * 0x1p-10f), 0x02);     // midpoint 1|2 (x 2^-9) -> even (2)
    EXPECT_EQ(f32ToE4m3(1.0625f), 0x38);          // midpoint 1|1.125 -> 1
    EXPECT_EQ(f32ToE4m3(1.1875f), 0x3a);          // midpoint 1.125|1.25 -> 1.25
    EXPECT_EQ(f32ToE4m3(232.0f), 0x76);           // midpoint 224|240 -> 224
    EXPECT_EQ(f32ToE4m3(248.0f), 0x78);           // midpoint 240|256 -> 256 (exponent carry)
    EXPECT_EQ(f32ToE4m3(0x1.ep-7f), 0x08);        // 15/16 * 2^-6: subnormal rounds up to 2^-6
}

TEST(KernelsE4m3, AllBf16PatternsMatchSlowDefinition) {
    int checked = 0;
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {
        const float x = bf16BitsToF32(static_cast<uint16_t>(bits));
        if (!std::isfinite(x)) continue;
        ASSERT_EQ(f32ToE4m3(x), slowE4m3(x)) << "bf16 bits 0x" << std::hex << bits << " x=" << x;
        ++checked;
    }
    EXPECT_EQ(checked, 65536 - 256);  // all but the 2 x 128 patterns with an all-ones exponent
}

TEST(KernelsE4m3, RandomFp32MatchesSlowDefinition) {
    std::mt19937 rng(1234);
    // Uniform bit patterns would be mostly huge or tiny; draw exponents around the e4m3 range.
    std::uniform_int_distribution<uint32_t> mantissa(0, (1U << 23) - 1);
    std::uniform_int_distribution<uint32_t> exponent(127 - 14, 127 + 10);
    for (int i = 0; i < 400000; ++i) {
        const uint32_t bits = (rng() & 0x80000000U) | (exponent(rng) << 23) | mantissa(rng);
        const float x = std::bit_cast<float>(bits);
        ASSERT_EQ(f32ToE4m3(x), slowE4m3(x)) << "x=" << std::hexfloat << x;
    }
    // Values one fp32 ulp around every e4m3 midpoint and code.
    for (int code = 0; code < 126; ++code) {
        const auto lo = static_cast<float>(testing::e4m3CodeValue(code));
        const auto hi = static_cast<float>(testing::e4m3CodeValue(code + 1));
        const float mid = lo + (hi - lo) / 2;
        for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), lo, hi}) {
            ASSERT_EQ(f32ToE4m3(x), slowE4m3(x)) << "x=" << std::hexfloat << x;
            ASSERT_EQ(f32ToE4m3(-x), slowE4m3(-x)) << "x=" << std::hexfloat << -x;
        }
    }
}

TEST(KernelsE4m3, DecodeRoundTripsEveryCode) {
    for (int code = 0; code < 256; ++code) {
        const float v = e4m3ToF32(static_cast<uint8_t>(code));
        if ((code & 0x7f) == 0x7f) {
            EXPECT_TRUE(std::isnan(v)) << code;
            continue;
        }
        EXPECT_EQ(std::abs(v), static_cast<float>(testing::e4m3CodeValue(code & 0x7f))) << code;
        EXPECT_EQ(f32ToE4m3(v), code) << code;
    }
}

// The CUDA kernel divides with quotientViaReciprocal; this proves it gives the e4m3 bytes of IEEE
// division for every (x, amax) pair of bf16 values the quantizer can see (x >= 0 suffices: all
// steps are sign-symmetric under round-to-nearest).
TEST(KernelsE4m3, ReciprocalQuotientMatchesDivisionExhaustively) {
    int64_t pairs = 0;
    int64_t quotient_diffs_above_2m12 = 0;
    for (uint32_t a_bits = 0; a_bits < 0x7f80; ++a_bits) {
        const float amax = bf16BitsToF32(static_cast<uint16_t>(a_bits));
        const float s = std::max(amax / kFp8Max, kFp8ScaleFloor);
        const float r = 1.0f / s;
        for (uint32_t x_bits = 0; x_bits <= a_bits; ++x_bits) {
            const float x = bf16BitsToF32(static_cast<uint16_t>(x_bits));
            const float exact = x / s;
            const float fast = quotientViaReciprocal(x, s, r);
            if (exact != fast) {
                if (std::fabs(exact) >= 0x1p-12f) ++quotient_diffs_above_2m12;
                ASSERT_EQ(f32ToE4m3(std::min(exact, kFp8Max)), f32ToE4m3(std::min(fast, kFp8Max)))
                    << "x=" << std::hexfloat << x << " s=" << s;
            }
            ++pairs;
        }
    }
    EXPECT_EQ(pairs, int64_t{0x7f80} * (0x7f80 + 1) / 2);
    EXPECT_EQ(quotient_diffs_above_2m12, 0);
}

// Regression (seen on an H200): -0 and negative values whose quotient underflows must keep their
// sign, as IEEE division does (e4m3 0x80, not 0x00). Zero blocks of negative zeros are common:
// a block scaled by 0 is all signed zeros.
TEST(KernelsE4m3, ReciprocalQuotientKeepsTheSignOfZero) {
    for (uint32_t a_bits = 0; a_bits < 0x7f80; a_bits += 7) {
        const float amax = bf16BitsToF32(static_cast<uint16_t>(a_bits));
        const float s = std::max(amax / kFp8Max, kFp8ScaleFloor);
        const float r = 1.0f / s;
        for (uint32_t x_bits = 0x8000; x_bits <= 0x8000 + a_bits; x_bits += 3) {
            const float x = bf16BitsToF32(static_cast<uint16_t>(x_bits));
            ASSERT_EQ(f32ToE4m3(std::max(x / s, -kFp8Max)),
                      f32ToE4m3(std::max(quotientViaReciprocal(x, s, r), -kFp8Max)))
                << "x=" << std::hexfloat << x << " s=" << s;
        }
    }
}

}  // namespace
}  // namespace weightsync::kernels
