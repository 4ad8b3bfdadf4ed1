#pragma once
// float8_e4m3fn encoding (bias 7, max finite 448, no infinities, NaN = S.1111.111) and the
// constants of the block format (its block size, kFp8BlockSize, is in common/dtype.h). Host-only;
// the CUDA kernel uses the hardware conversion, which this matches bit for bit.

#include "common/dtype.h"

#include <bit>
#include <cstdint>

namespace weightsync::kernels {

constexpr float kFp8Max = 448.0f;
constexpr float kFp8ScaleFloor = 1e-12f;

/// fp32 -> e4m3 with round-to-nearest-even and saturation to +-448 (values beyond 448, including
/// infinities, become +-448; results below half the smallest subnormal become a signed zero).
/// NaN -> 0x7f. Bit-exact with __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3).
/// Branch-free so that loops over it vectorize.
inline uint8_t f32ToE4m3(float x) noexcept {
    const uint32_t u = std::bit_cast<uint32_t>(x);
    const uint32_t sign = (u >> 24) & 0x80U;
    const uint32_t a = u & 0x7fffffffU;
    // Normal range [2^-6, 448): rebias the exponent (127 -> 7) and round the mantissa to 3 bits;
    // a carry out of the mantissa correctly bumps the exponent.
    const uint32_t normal = ((a + 0x7ffffU + ((a >> 20) & 1U)) >> 20) - (120U << 3);
    // Subnormal range [0, 2^-6): adding 2^14 (ulp 2^-9) rounds |x| to a multiple of 2^-9 (RNE).
    const uint32_t sub = std::bit_cast<uint32_t>(std::bit_cast<float>(a) + 16384.0f) - 0x46800000U;
    // Selects as masks rather than ?: so that GCC vectorizes loops over this at -O2.
    const uint32_t is_normal = 0U - static_cast<uint32_t>(a >= 0x3c800000U);  // 2^-6
    const uint32_t is_sat = 0U - static_cast<uint32_t>(a >= 0x43e00000U);     // 448
    const uint32_t is_nan = 0U - static_cast<uint32_t>(a > 0x7f800000U);
    uint32_t mag = (normal & is_normal) | (sub & ~is_normal);
    mag = (0x7eU & is_sat) | (mag & ~is_sat);
    return static_cast<uint8_t>((0x7fU & is_nan) | ((sign | mag) & ~is_nan));
}

/// e4m3 -> fp32, exact. 0x7f/0xff decode to NaN.
inline float e4m3ToF32(uint8_t bits) noexcept {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x80U) << 24;
    const uint32_t exp = (bits >> 3) & 0xfU;
    const uint32_t man = bits & 0x7U;
    if (exp == 0xfU && man == 0x7U) return std::bit_cast<float>(sign | 0x7fc00000U);
    if (exp == 0) {
        const float mag = static_cast<float>(man) * 0x1p-9f;
        return sign != 0 ? -mag : mag;
    }
    return std::bit_cast<float>(sign | ((exp + 120U) << 23) | (man << 20));
}

}  // namespace weightsync::kernels
