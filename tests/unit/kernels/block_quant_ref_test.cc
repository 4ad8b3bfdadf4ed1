// The CPU reference block quantizer: hand-computed blocks, edges, groups, strides, fp32 sources,
// errors, and agreement with the slow definition on random data.

#include "kernels/fp8/block_quant_ref.h"
#include "common/error.h"
#include "support/expect_error.h"
#include "unit/kernels/kernels_test_util.h"

#include <gtest/gtest.h>

#include <bit>
#include <limits>
#include <string>

namespace weightsync::kernels {
namespace {

using testing::HostTensor;
using testing::scalesFor;

struct Quantized {
    HostTensor<uint8_t> q;
    HostTensor<float> s;
};

// Quantizes a dense bf16 tensor built from fp32 values f(g, r, c).
template <typename F>
Quantized quantizeDense(int64_t g, int64_t r, int64_t c, F f) {
    HostTensor<uint16_t> x(DType::kBF16, g, r, c);
    for (int64_t gi = 0; gi < g; ++gi) {
        for (int64_t ri = 0; ri < r; ++ri) {
            for (int64_t ci = 0; ci < c; ++ci) x.at(gi, ri, ci) = f32ToBf16Bits(f(gi, ri, ci));
        }
    }
    Quantized out{HostTensor<uint8_t>(DType::kF8E4M3, g, r, c, 0, 0, 0xaa), scalesFor(g, r, c)};
    blockQuantizeFp8Ref(x.cview(), out.q.view(), out.s.view());
    return out;
}

void expectMatchesSlow(const HostTensor<uint16_t> &x, const HostTensor<uint8_t> &q,
                       const HostTensor<float> &s) {
    const auto slow = testing::slowQuantize(x.g, x.r, x.c, [&](int64_t g, int64_t r, int64_t c) {
        return bf16BitsToF32(x.at(g, r, c));
    });
    for (int64_t g = 0; g < x.g; ++g) {
        for (int64_t b = 0; b < s.r * s.c; ++b) {
            ASSERT_EQ(std::bit_cast<uint32_t>(s.at(g, b / s.c, b % s.c)),
                      std::bit_cast<uint32_t>(slow.s[g * s.r * s.c + b]))
                << "scale g=" << g << " block=" << b;
        }
        for (int64_t r = 0; r < x.r; ++r) {
            for (int64_t c = 0; c < x.c; ++c) {
                ASSERT_EQ(q.at(g, r, c), slow.q[(g * x.r + r) * x.c + c])
                    << "g=" << g << " r=" << r << " c=" << c;
            }
        }
    }
}

TEST(KernelsBlockQuantRef, AllZeroBlockGetsFloorScale) {
    const auto out = quantizeDense(1, 128, 128, [](auto...) { return 0.0f; });
    EXPECT_EQ(out.s.at(0, 0, 0), kFp8ScaleFloor);
    for (uint8_t b : out.q.data) EXPECT_EQ(b, 0x00);
    const auto neg = quantizeDense(1, 128, 128, [](auto...) { return -0.0f; });
    for (uint8_t b : neg.q.data) EXPECT_EQ(b, 0x80);  // signed zero survives, as on the GPU
}

TEST(KernelsBlockQuantRef, TinyBlockQuantizesToZeroWithFloorScale) {
    // amax / 448 ~ 2e-33 < 1e-12, so s = 1e-12 and x / s ~ 1e-18 rounds to zero.
    const auto out = quantizeDense(1, 128, 128, [](int64_t, int64_t r, int64_t c) {
        return (r + c) % 2 == 0 ? 1e-30f : -1e-30f;
    });
    EXPECT_EQ(out.s.at(0, 0, 0), 1e-12f);
    for (int64_t r = 0; r < 128; ++r) {
        for (int64_t c = 0; c < 128; ++c) EXPECT_EQ(out.q.at(0, r, c), (r + c) % 2 == 0 ? 0 : 0x80);
    }
}

TEST(KernelsBlockQuantRef, HugeValuesNearBf16Max) {
    const float big = bf16BitsToF32(0x7f7f);  // largest finite bf16, 3.3895e38
    const float vals[] = {big, -big, big / 2, big / 4, std::ldexp(big, -12), std::ldexp(big, -20)};
    const uint8_t want[] = {0x7e, 0xfe, 0x76, 0x6e, 0x1e, 0x00};
    const auto out = quantizeDense(1, 1, 6, [&](int64_t, int64_t, int64_t c) { return vals[c]; });
    EXPECT_EQ(out.s.at(0, 0, 0), big / 448.0f);
    EXPECT_TRUE(std::isfinite(out.s.at(0, 0, 0)));
    for (int c = 0; c < 6; ++c) EXPECT_EQ(out.q.at(0, 0, c), want[c]) << c;
}

TEST(KernelsBlockQuantRef, UnitScaleMixedSignsAndMidpoints) {
    // amax = 448 gives s = 1 exactly, so the bytes are the e4m3 encodings of the values themselves.
    const float vals[] = {448,          -448,    1,        -1,     0.5f,    0x1p-9f, 0x1p-10f,
                          3 * 0x1p-10f, 1.0625f, -1.1875f, 232.0f, -248.0f, 0.0f};
    const uint8_t want[] = {0x7e, 0xfe, 0x38, 0xb8, 0x30, 0x01, 0x00,
                            0x02, 0x38, 0xba, 0x76, 0xf8, 0x00};
    constexpr int kN = sizeof(vals) / sizeof(vals[0]);
    const auto out = quantizeDense(1, 128, 128, [&](int64_t, int64_t r, int64_t c) {
        const int64_t i = r * 128 + c;
        return i < kN ? vals[i] : 0.25f;
    });
    EXPECT_EQ(out.s.at(0, 0, 0), 1.0f);
    for (int i = 0; i < kN; ++i) EXPECT_EQ(out.q.at(0, 0, i), want[i]) << i;
    EXPECT_EQ(out.q.at(0, 127, 127), 0x28);  // 0.25
}

TEST(KernelsBlockQuantRef, ScaleTwoMidpoint) {
    // amax = 896 -> s = 2; 2.125 / 2 = 1.0625 is the midpoint 1|1.125 -> 1.0.
    const auto out = quantizeDense(1, 2, 2, [](int64_t, int64_t r, int64_t c) {
        return r == 0 ? (c == 0 ? 896.0f : 2.125f) : (c == 0 ? -2.375f : 2.25f);
    });
    EXPECT_EQ(out.s.at(0, 0, 0), 2.0f);
    EXPECT_EQ(out.q.at(0, 0, 0), 0x7e);
    EXPECT_EQ(out.q.at(0, 0, 1), 0x38);
    EXPECT_EQ(out.q.at(0, 1, 0), 0xba);  // -1.1875 -> -1.25
    EXPECT_EQ(out.q.at(0, 1, 1), 0x39);  // 1.125 exact
}

TEST(KernelsBlockQuantRef, QuotientAbove448IsClamped) {
    // Find an amax whose scale rounds down, so amax / s lands just above 448 before the clamp.
    float amax = 0;
    for (uint32_t bits = 0x3f80; bits < 0x7f80 && amax == 0; ++bits) {
        const float a = bf16BitsToF32(static_cast<uint16_t>(bits));
        if (a / (a / kFp8Max) > kFp8Max) amax = a;
    }
    ASSERT_NE(amax, 0.0f);
    const auto out =
        quantizeDense(1, 1, 2, [&](int64_t, int64_t, int64_t c) { return c == 0 ? amax : -amax; });
    EXPECT_EQ(out.s.at(0, 0, 0), amax / kFp8Max);
    EXPECT_EQ(out.q.at(0, 0, 0), 0x7e);
    EXPECT_EQ(out.q.at(0, 0, 1), 0xfe);
}

TEST(KernelsBlockQuantRef, PartialEdgeBlocksOnlyUseValidElements) {
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{130, 200}, {1, 1}, {127, 129}, {129, 128}, {256, 1}}) {
        HostTensor<uint16_t> x(DType::kBF16, 1, rows, cols);
        testing::fillRandomBf16(x, static_cast<uint32_t>(rows * 1000 + cols));
        HostTensor<uint8_t> q(DType::kF8E4M3, 1, rows, cols, 0, 0, 0xaa);
        auto s = scalesFor(1, rows, cols);
        blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        expectMatchesSlow(x, q, s);
    }
    // A lone element: s = |x| / 448 and the byte is +-448.
    const auto one = quantizeDense(1, 1, 1, [](auto...) { return -3.0f; });
    EXPECT_EQ(one.s.at(0, 0, 0), 3.0f / 448.0f);
    EXPECT_EQ(one.q.at(0, 0, 0), 0xfe);
}

TEST(KernelsBlockQuantRef, GroupsAreIndependent) {
    HostTensor<uint16_t> x(DType::kBF16, 3, 200, 300);
    testing::fillRandomBf16(x, 7, 20, 0);  // |x| well below 1000
    for (int64_t c = 0; c < 300; ++c) x.at(1, 0, c) = f32ToBf16Bits(1000.0f);  // group 1 louder
    HostTensor<uint8_t> q(DType::kF8E4M3, 3, 200, 300);
    auto s = scalesFor(3, 200, 300);
    blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
    expectMatchesSlow(x, q, s);
    EXPECT_EQ(s.at(1, 0, 0), 1000.0f / 448.0f);
    EXPECT_NE(s.at(0, 0, 0), s.at(1, 0, 0));
}

TEST(KernelsBlockQuantRef, StridedViewsLeavePaddingAlone) {
    HostTensor<uint16_t> x(DType::kBF16, 2, 150, 260, /*row_pad=*/13, /*group_pad=*/7);
    testing::fillRandomBf16(x, 99);
    HostTensor<uint8_t> q(DType::kF8E4M3, 2, 150, 260, 5, 3, 0xaa);
    auto s = scalesFor(2, 150, 260, /*pad=*/2);
    blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
    expectMatchesSlow(x, q, s);
    for (int64_t g = 0; g < 2; ++g) {
        for (int64_t r = 0; r < 150; ++r) {
            for (int64_t c = 260; c < q.rs; ++c) EXPECT_EQ(q.at(g, r, c), 0xaa);
        }
        for (int64_t r = 0; r < s.r; ++r) EXPECT_EQ(s.at(g, r, s.c), -1.0f);
    }
}

TEST(KernelsBlockQuantRef, Fp32SourceEqualsItsBf16Rounding) {
    HostTensor<float> x32(DType::kF32, 2, 140, 270, 3);
    HostTensor<uint16_t> x16(DType::kBF16, 2, 140, 270);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (int64_t g = 0; g < 2; ++g) {
        for (int64_t r = 0; r < 140; ++r) {
            for (int64_t c = 0; c < 270; ++c) {
                float v = normal(rng);
                if (c == 3) v = 1.00390625f;  // midpoint 1|1+2^-7 in bf16: rounds to even 1.0
                if (c == 4) v = 1.01171875f;  // midpoint 1+2^-7|1+2^-6: rounds up
                if (c == 5) v = 3.0e38f;      // large but finite in bf16
                x32.at(g, r, c) = v;
                x16.at(g, r, c) = f32ToBf16Bits(v);
            }
        }
    }
    HostTensor<uint8_t> q32(DType::kF8E4M3, 2, 140, 270);
    HostTensor<uint8_t> q16(DType::kF8E4M3, 2, 140, 270);
    auto s32 = scalesFor(2, 140, 270);
    auto s16 = scalesFor(2, 140, 270);
    blockQuantizeFp8Ref(x32.cview(), q32.view(), s32.view());
    blockQuantizeFp8Ref(x16.cview(), q16.view(), s16.view());
    EXPECT_EQ(q32.data, q16.data);
    EXPECT_EQ(s32.data, s16.data);
}

template <typename T>
std::string errorOf(const HostTensor<T> &x) {
    HostTensor<uint8_t> q(DType::kF8E4M3, x.g, x.r, x.c);
    auto s = scalesFor(x.g, x.r, x.c);
    try {
        blockQuantizeFp8Ref(x.cview(), q.view(), s.view());
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        return e.what();
    }
    return "no error";
}

TEST(KernelsBlockQuantRef, NonFiniteInputNamesFirstPosition) {
    HostTensor<uint16_t> x(DType::kBF16, 2, 300, 300);
    testing::fillRandomBf16(x, 3);
    x.at(1, 200, 250) = 0x7fc0;  // NaN in a later block of group 1
    x.at(1, 130, 290) = 0xff80;  // -Inf: earlier in row-major order, in another block
    EXPECT_NE(errorOf(x).find("group 1 row 130 col 290"), std::string::npos) << errorOf(x);
    x.at(0, 5, 7) = 0x7fc0;
    EXPECT_NE(errorOf(x).find("group 0 row 5 col 7"), std::string::npos) << errorOf(x);

    HostTensor<float> y(DType::kF32, 1, 4, 4, 0, 0, 1.0f);
    y.at(0, 2, 3) = 3.3999e38f;  // finite fp32 that rounds to bf16 infinity
    const std::string msg = errorOf(y);
    EXPECT_NE(msg.find("group 0 row 2 col 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bf16"), std::string::npos) << msg;
    y.at(0, 2, 3) = std::numeric_limits<float>::infinity();
    EXPECT_NE(errorOf(y).find("row 2 col 3"), std::string::npos);
    // NaNs with a full payload (CUDA's canonical NaN and its negative) must not round to zero.
    for (uint32_t nan_bits : {0x7fffffffU, 0xffffffffU, 0x7fff8000U}) {
        y.at(0, 2, 3) = 1.0f;
        y.at(0, 1, 2) = std::bit_cast<float>(nan_bits);
        EXPECT_NE(errorOf(y).find("row 1 col 2"), std::string::npos) << std::hex << nan_bits;
    }
}

TEST(KernelsBlockQuantRef, RejectsBadViews) {
    HostTensor<uint16_t> x(DType::kBF16, 1, 130, 130);
    HostTensor<uint8_t> q(DType::kF8E4M3, 1, 130, 130);
    auto s = scalesFor(1, 130, 130);
    const auto expect_invalid = [](const std::function<void()> &fn) {
        weightsync::testing::expectThrows(Errc::kInvalidArgument, fn);
    };
    expect_invalid([&] {  // scales of the wrong block count
        View3 bad = s.view();
        bad.cols = 1;
        blockQuantizeFp8Ref(x.cview(), q.view(), bad);
    });
    expect_invalid([&] {  // destination not fp8
        View3 bad = q.view();
        bad.dtype = DType::kU8;
        blockQuantizeFp8Ref(x.cview(), bad, s.view());
    });
    expect_invalid([&] {  // source fp8
        ConstView3 bad = x.cview();
        bad.dtype = DType::kF8E4M3;
        blockQuantizeFp8Ref(bad, q.view(), s.view());
    });
    expect_invalid([&] {  // overlapping rows
        ConstView3 bad = x.cview();
        bad.row_stride = 100;
        blockQuantizeFp8Ref(bad, q.view(), s.view());
    });
    expect_invalid([&] {  // shape mismatch
        View3 bad = q.view();
        bad.rows = 129;
        blockQuantizeFp8Ref(x.cview(), bad, s.view());
    });
    // Empty tensors are fine and touch nothing.
    blockQuantizeFp8Ref(ConstView3{nullptr, DType::kBF16, 1, 0, 5, 0, 5},
                        View3{nullptr, DType::kF8E4M3, 1, 0, 5, 0, 5},
                        View3{nullptr, DType::kF32, 1, 0, 1, 0, 1});
}

}  // namespace
}  // namespace weightsync::kernels
