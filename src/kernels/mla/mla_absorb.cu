#include "common/dtype.h"
#include "kernels/convert/bf16_device.cuh"
#include "kernels/mla/mla_absorb.cuh"

#include <algorithm>

namespace weightsync::kernels {

namespace {

// e4m3 -> fp32, exact (as e4m3ToF32 on the host).
__device__ __forceinline__ float decodeE4m3(uint8_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x80U) << 24;
    const uint32_t exp = (bits >> 3) & 0xfU;
    const uint32_t man = bits & 0x7U;
    if (exp == 0xfU && man == 0x7U) return __uint_as_float(sign | 0x7fc00000U);
    if (exp == 0) {
        const float mag = __fmul_rn(static_cast<float>(man), 0x1p-9f);
        return sign != 0 ? -mag : mag;
    }
    return __uint_as_float(sign | ((exp + 120U) << 23) | (man << 20));
}

__global__ void mlaAbsorbKernel(const uint8_t *__restrict__ weight,
                                const float *__restrict__ scales, int64_t rows, int64_t cols,
                                int64_t nope, int64_t v_head, uint16_t *__restrict__ w_uv,
                                uint16_t *__restrict__ w_uk_t) {
    const int64_t per_head = nope + v_head;
    const int64_t bcols = (cols + kFp8BlockSize - 1) / kFp8BlockSize;
    const int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols;
        const int64_t l = i % cols;
        const int64_t h = r / per_head;
        const int64_t j = r % per_head;
        const float scale = scales[(r / kFp8BlockSize) * bcols + l / kFp8BlockSize];
        const uint16_t v = toBf16(__fmul_rn(decodeE4m3(weight[i]), scale));
        if (j < nope) {
            w_uk_t[(h * nope + j) * cols + l] = v;
        } else {
            w_uv[(h * cols + l) * v_head + (j - nope)] = v;
        }
    }
}

}  // namespace

cudaError_t mlaAbsorb(const uint8_t *weight, const float *scales, const MlaAbsorbShape &s,
                      uint16_t *w_uv, uint16_t *w_uk_t, cudaStream_t stream) {
    const int64_t per_head = s.nope + s.v_head;
    if (per_head <= 0 || s.rows % per_head != 0 || s.cols <= 0) return cudaErrorInvalidValue;
    const int64_t n = s.rows * s.cols;
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535 * 8);
    mlaAbsorbKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
        weight, scales, s.rows, s.cols, s.nope, s.v_head, w_uv, w_uk_t);
    return cudaGetLastError();
}

}  // namespace weightsync::kernels
