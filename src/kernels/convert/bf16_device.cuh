#pragma once
// fp32 -> bf16 bits on the device: the same bits as weightsync::f32ToBf16Bits (common/dtype.h),
// round to nearest even, a NaN stays a quiet NaN with its sign, overflow gives +-Inf. For .cu
// files only (the kernels of kernels/, convert/cuda/).

#include <cstdint>

namespace weightsync::kernels {

__device__ __forceinline__ uint16_t toBf16(float x) {
    uint32_t bits = __float_as_uint(x);
    if ((bits & 0x7f800000U) == 0x7f800000U && (bits & 0x007fffffU) != 0) {
        return static_cast<uint16_t>((bits >> 16) | 0x0040U);
    }
    bits += 0x7fffU + ((bits >> 16) & 1U);
    return static_cast<uint16_t>(bits >> 16);
}

}  // namespace weightsync::kernels
