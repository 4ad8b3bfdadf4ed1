#pragma once
// Test helpers shared by the kernel unit tests and the GPU tests: host tensors with views, random
// data, and an independent slow e4m3 encoder / block quantizer written from the format definition.

#include "common/dtype.h"
#include "kernels/fp8/e4m3.h"
#include "kernels/view.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace weightsync::kernels::testing {

/// Value of the positive e4m3 code c (0..126) from the definition: (1 + m/8) * 2^(e-7), or m *
/// 2^-9.
inline double e4m3CodeValue(int code) {
    const int e = code >> 3;
    const int m = code & 7;
    return e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
}

/// Slow e4m3 encoder: nearest of the 127 finite magnitudes, ties to the even code, saturating.
inline uint8_t slowE4m3(float x) {
    if (std::isnan(x)) return 0x7f;
    const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
    const double a = std::fabs(static_cast<double>(x));
    int best = 0;
    for (int c = 1; c <= 126; ++c) {
        const double d_best = std::fabs(a - e4m3CodeValue(best));
        const double d = std::fabs(a - e4m3CodeValue(c));
        if (d < d_best || (d == d_best && (c & 1) == 0)) best = c;
    }
    return static_cast<uint8_t>(sign | best);
}

/// A host tensor [G][R][C] with a padded row stride and group stride (in elements).
template <typename T>
struct HostTensor {
    HostTensor(DType type, int64_t groups, int64_t rows, int64_t cols, int64_t row_pad = 0,
               int64_t group_pad = 0, T fill = T{})
        : dtype(type),
          g(groups),
          r(rows),
          c(cols),
          rs(cols + row_pad),
          gs(rows * (cols + row_pad) + group_pad),
          data(static_cast<size_t>(std::max<int64_t>(1, groups * gs)), fill) {}
    T &at(int64_t gi, int64_t ri, int64_t ci) { return data[gi * gs + ri * rs + ci]; }
    const T &at(int64_t gi, int64_t ri, int64_t ci) const { return data[gi * gs + ri * rs + ci]; }
    View3 view() { return {data.data(), dtype, g, r, c, gs, rs}; }
    ConstView3 cview() const { return {data.data(), dtype, g, r, c, gs, rs}; }

    DType dtype;
    int64_t g, r, c, rs, gs;
    std::vector<T> data;
};

/// Scales tensor for a quantization of [G][R][C].
inline HostTensor<float> scalesFor(int64_t groups, int64_t rows, int64_t cols, int64_t pad = 0) {
    return HostTensor<float>(DType::kF32, groups, blocksOf(rows, kFp8BlockSize),
                             blocksOf(cols, kFp8BlockSize), pad, pad, -1.0f);
}

/// Random bf16 tensor; each 128x128 block gets its own magnitude 2^k, k uniform in [-lo, hi], and
/// a few exact zeros and sign mixes, so scales vary widely.
inline void fillRandomBf16(HostTensor<uint16_t> &t, uint32_t seed, int lo = 20, int hi = 20) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> expo(-lo, hi);
    std::vector<float> block_scale(
        static_cast<size_t>(t.g * blocksOf(t.r, kFp8BlockSize) * blocksOf(t.c, kFp8BlockSize)));
    for (float &s : block_scale) s = std::ldexp(1.0f, expo(rng));
    const int64_t cb = blocksOf(t.c, kFp8BlockSize);
    const int64_t rb = blocksOf(t.r, kFp8BlockSize);
    for (int64_t g = 0; g < t.g; ++g) {
        for (int64_t r = 0; r < t.r; ++r) {
            for (int64_t c = 0; c < t.c; ++c) {
                const float s = block_scale[(g * rb + r / kFp8BlockSize) * cb + c / kFp8BlockSize];
                const float v = (rng() % 97 == 0) ? 0.0f : normal(rng) * s;
                t.at(g, r, c) = f32ToBf16Bits(v);
            }
        }
    }
}

struct SlowQuant {
    std::vector<uint8_t> q;  // dense [G][R][C]
    std::vector<float> s;    // dense [G][RB][CB]
};

/// Straightforward block quantizer from the format definition, on bf16-rounded values x(g, r, c).
template <typename Get>
SlowQuant slowQuantize(int64_t groups, int64_t rows, int64_t cols, Get x) {
    const int64_t rb = blocksOf(rows, kFp8BlockSize);
    const int64_t cb = blocksOf(cols, kFp8BlockSize);
    SlowQuant out{std::vector<uint8_t>(static_cast<size_t>(groups * rows * cols)),
                  std::vector<float>(static_cast<size_t>(groups * rb * cb))};
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t b = 0; b < rb * cb; ++b) {
            const int64_t r0 = (b / cb) * kFp8BlockSize;
            const int64_t c0 = (b % cb) * kFp8BlockSize;
            const int64_t r1 = std::min(rows, r0 + kFp8BlockSize);
            const int64_t c1 = std::min(cols, c0 + kFp8BlockSize);
            float amax = 0.0f;
            for (int64_t r = r0; r < r1; ++r) {
                for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x(g, r, c)));
            }
            const float s = std::max(amax / 448.0f, 1e-12f);
            out.s[static_cast<size_t>(g * rb * cb + b)] = s;
            for (int64_t r = r0; r < r1; ++r) {
                for (int64_t c = c0; c < c1; ++c) {
                    const float q = std::clamp(x(g, r, c) / s, -448.0f, 448.0f);
                    out.q[static_cast<size_t>((g * rows + r) * cols + c)] = slowE4m3(q);
                }
            }
        }
    }
    return out;
}

}  // namespace weightsync::kernels::testing
