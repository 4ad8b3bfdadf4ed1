// f32ToE4m3 against CUDA's own host emulation of __nv_cvt_float_to_fp8 (cuda_fp8.h), which is
// what the kernel's hardware conversion implements. Header only: runs without a GPU.

#include "kernels/fp8/e4m3.h"

#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <random>

namespace weightsync::kernels {
namespace {

uint8_t cudaE4m3(float x) {
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
}

TEST(KernelsE4m3CudaHeader, EveryFp32PatternWithLow12BitsSampled) {
    // All 2^20 combinations of sign, exponent and the top 11 mantissa bits, each with 4 values of
    // the low 12 bits (0, midpoint-ish, random): covers every rounding position of e4m3.
    std::mt19937 rng(77);
    for (uint32_t hi = 0; hi < (1U << 20); ++hi) {
        for (uint32_t lo : {0U, 0x800U, 0xfffU, static_cast<uint32_t>(rng()) & 0xfffU}) {
            const uint32_t bits = (hi << 12) | lo;
            const float x = std::bit_cast<float>(bits);
            ASSERT_EQ(f32ToE4m3(x), cudaE4m3(x)) << "bits 0x" << std::hex << bits;
        }
    }
}

TEST(KernelsE4m3CudaHeader, AroundEveryMidpoint) {
    for (uint32_t code = 0; code < 0x7e; ++code) {
        const float lo = e4m3ToF32(static_cast<uint8_t>(code));
        const float hi = e4m3ToF32(static_cast<uint8_t>(code + 1));
        const float mid = lo + (hi - lo) / 2;
        uint32_t b = std::bit_cast<uint32_t>(mid);
        for (uint32_t d = b - 4; d <= b + 4; ++d) {
            const float x = std::bit_cast<float>(d);
            ASSERT_EQ(f32ToE4m3(x), cudaE4m3(x)) << std::hexfloat << x;
            ASSERT_EQ(f32ToE4m3(-x), cudaE4m3(-x)) << std::hexfloat << -x;
        }
    }
}

}  // namespace
}  // namespace weightsync::kernels
