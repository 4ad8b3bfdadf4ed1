// The CPU reference cast/copy.

#include "kernels/convert/cast_ref.h"
#include "common/error.h"
#include "support/expect_error.h"
#include "unit/kernels/kernels_test_util.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace weightsync::kernels {
namespace {

using testing::HostTensor;

TEST(KernelsCastRef, Bf16ToFp32WidensEveryPatternExactly) {
    HostTensor<uint16_t> x(DType::kBF16, 1, 256, 256);
    for (uint32_t i = 0; i < 65536; ++i) x.data[i] = static_cast<uint16_t>(i);
    HostTensor<float> y(DType::kF32, 1, 256, 256, 3, 0, -7.0f);
    castRef(x.cview(), y.view());
    for (uint32_t i = 0; i < 65536; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(y.at(0, i / 256, i % 256)), i << 16) << i;
    }
    EXPECT_EQ(y.at(0, 5, 257), -7.0f);  // padding untouched
}

TEST(KernelsCastRef, Fp32ToBf16RoundsToNearestEven) {
    HostTensor<float> x(DType::kF32, 3, 70, 90, 0, 11);
    std::mt19937 rng(8);
    for (float &v : x.data) v = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    x.at(0, 0, 0) = 1.00390625f;  // midpoint -> even (1.0 = 0x3f80)
    x.at(0, 0, 1) = 1.01171875f;  // midpoint -> even (0x3f82)
    x.at(0, 0, 2) = std::numeric_limits<float>::infinity();
    x.at(0, 0, 3) = 3.3999e38f;  // overflows to infinity
    HostTensor<uint16_t> y(DType::kBF16, 3, 70, 90, 6, 0, 0x1234);
    castRef(x.cview(), y.view());
    EXPECT_EQ(y.at(0, 0, 0), 0x3f80);
    EXPECT_EQ(y.at(0, 0, 1), 0x3f82);
    EXPECT_EQ(y.at(0, 0, 2), 0x7f80);
    EXPECT_EQ(y.at(0, 0, 3), 0x7f80);
    for (int64_t g = 0; g < 3; ++g) {
        for (int64_t r = 0; r < 70; ++r) {
            for (int64_t c = 0; c < 90; ++c) {
                ASSERT_EQ(y.at(g, r, c), f32ToBf16Bits(x.at(g, r, c)));
                const float v = x.at(g, r, c);
                if (std::isnan(v)) {
                    EXPECT_TRUE(std::isnan(bf16BitsToF32(y.at(g, r, c))));
                }
            }
            EXPECT_EQ(y.at(g, r, 90), 0x1234);
        }
    }
}

TEST(KernelsCastRef, SameTypeCopiesBits) {
    HostTensor<uint16_t> a(DType::kBF16, 2, 33, 65, 7, 5);
    for (size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<uint16_t>(i * 2654435761U);
    HostTensor<uint16_t> b(DType::kBF16, 2, 33, 65);
    castRef(a.cview(), b.view());
    HostTensor<float> c(DType::kF32, 2, 33, 65, 1);
    for (size_t i = 0; i < c.data.size(); ++i)
        c.data[i] = std::bit_cast<float>(static_cast<uint32_t>(0x7fc00001U + i));
    HostTensor<float> d(DType::kF32, 2, 33, 65, 0, 9);
    castRef(c.cview(), d.view());
    for (int64_t g = 0; g < 2; ++g) {
        for (int64_t r = 0; r < 33; ++r) {
            for (int64_t col = 0; col < 65; ++col) {
                ASSERT_EQ(b.at(g, r, col), a.at(g, r, col));
                ASSERT_EQ(std::bit_cast<uint32_t>(d.at(g, r, col)),
                          std::bit_cast<uint32_t>(c.at(g, r, col)));  // NaN payloads too
            }
        }
    }
}

TEST(KernelsCastRef, RejectsOtherTypesAndShapes) {
    HostTensor<uint16_t> a(DType::kBF16, 1, 4, 4);
    HostTensor<uint8_t> f8(DType::kF8E4M3, 1, 4, 4);
    HostTensor<uint16_t> wrong(DType::kBF16, 1, 4, 5);
    const auto expect_invalid = [](const std::function<void()> &fn) {
        weightsync::testing::expectThrows(Errc::kInvalidArgument, fn);
    };
    expect_invalid([&] { castRef(a.cview(), f8.view()); });
    expect_invalid([&] { castRef(f8.cview(), a.view()); });
    expect_invalid([&] { castRef(a.cview(), wrong.view()); });
}

}  // namespace
}  // namespace weightsync::kernels
