// Kernels of convert/cuda. The synthetic fill is bit-identical to convert::syntheticFill: the
// same integer hashing, and float arithmetic that is exact (24-bit integers scaled by powers of
// two), written with _rn intrinsics so that no contraction can change it. One thread produces 8
// consecutive columns of a row (one 128-column scale block), CTAs in y stride over rows.

#include "common/dtype.h"
#include "convert/cuda/convert_cuda_launch.h"
#include "kernels/convert/bf16_device.cuh"

#include <algorithm>

namespace weightsync::convert::detail {

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 8;
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kTargetCtas = 16384;

__device__ __forceinline__ float blockScale(uint64_t key, int64_t g, int64_t rb, int64_t cb) {
    const uint64_t h = syntheticMix(key ^ syntheticMix(static_cast<uint64_t>(g) * 0x100000001b3ULL ^
                                                       static_cast<uint64_t>(rb) << 20 ^
                                                       static_cast<uint64_t>(cb)));
    if ((h & 63U) == 0) return 0.0f;
    const int exponent = static_cast<int>((h >> 8) % 17) - 12;  // 2^exponent, always normal
    return __uint_as_float(static_cast<uint32_t>(127 + exponent) << 23);
}

__device__ __forceinline__ float element(uint64_t row_key, int64_t c, float scale) {
    const uint64_t h = syntheticMix(row_key + static_cast<uint64_t>(c));
    const float u = __fmul_rn(__ull2float_rn(h >> 40), 1.0f / 16777216.0f);
    return __fmul_rn(__fsub_rn(__fmul_rn(2.0f, u), 1.0f), scale);
}

using kernels::toBf16;

template <bool kBf16, bool kVec>
__global__ void __launch_bounds__(kThreads) syntheticFillKernel(SyntheticFillDesc d) {
    const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kChunk;
    if (c0 >= d.cols) return;
    const int n = static_cast<int>(min(static_cast<int64_t>(kChunk), d.cols - c0));
    const int64_t total_rows = d.groups * d.rows;
    for (int64_t row = blockIdx.y; row < total_rows; row += gridDim.y) {
        const int64_t gl = row / d.rows;
        const int64_t g = d.g0 + gl;
        const int64_t r = d.r0 + (row - gl * d.rows);
        const uint64_t row_key =
            d.step_key ^ syntheticMix(static_cast<uint64_t>(g * d.tensor_rows + r));
        const float scale = blockScale(d.key, g, r / kFp8BlockSize, c0 / kFp8BlockSize);
        float v[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
            v[i] = (kVec || i < n) ? element(row_key, c0 + i, scale) : 0.0f;
        }
        const int64_t at = row * d.cols + c0;
        if constexpr (kBf16) {
            uint16_t *out = static_cast<uint16_t *>(d.out) + at;
            if constexpr (kVec) {
                uint32_t w[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    w[i] = static_cast<uint32_t>(toBf16(v[2 * i])) |
                           (static_cast<uint32_t>(toBf16(v[2 * i + 1])) << 16);
                }
                *reinterpret_cast<uint4 *>(out) = make_uint4(w[0], w[1], w[2], w[3]);
            } else {
                for (int i = 0; i < n; ++i) out[i] = toBf16(v[i]);
            }
        } else {
            float *out = static_cast<float *>(d.out) + at;
            if constexpr (kVec) {
                reinterpret_cast<float4 *>(out)[0] = make_float4(v[0], v[1], v[2], v[3]);
                reinterpret_cast<float4 *>(out)[1] = make_float4(v[4], v[5], v[6], v[7]);
            } else {
                for (int i = 0; i < n; ++i) out[i] = v[i];
            }
        }
    }
}

__global__ void __launch_bounds__(256)
    countMismatchesKernel(const unsigned char *a, const unsigned char *b, size_t bytes, bool vec,
                          unsigned long long *counter) {
    const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    unsigned long long local = 0;
    size_t tail = 0;
    if (vec) {
        const size_t words = bytes / 16;
        const auto *a4 = reinterpret_cast<const uint4 *>(a);
        const auto *b4 = reinterpret_cast<const uint4 *>(b);
        for (size_t i = tid; i < words; i += stride) {
            const uint4 x = a4[i];
            const uint4 y = b4[i];
            // __vcmpne4: 0xff in every byte that differs.
            local += (__popc(__vcmpne4(x.x, y.x)) + __popc(__vcmpne4(x.y, y.y)) +
                      __popc(__vcmpne4(x.z, y.z)) + __popc(__vcmpne4(x.w, y.w))) /
                     8;
        }
        tail = words * 16;
    }
    for (size_t i = tail + tid; i < bytes; i += stride) local += a[i] != b[i];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
        local += __shfl_down_sync(0xffffffffU, local, offset);
    if ((threadIdx.x & 31U) == 0 && local != 0) atomicAdd(counter, local);
}

}  // namespace

cudaError_t launchSyntheticFill(const SyntheticFillDesc &d, cudaStream_t stream) {
    const int64_t chunks = (d.cols + kChunk - 1) / kChunk;
    const int64_t grid_x = (chunks + kThreads - 1) / kThreads;
    const int64_t total_rows = d.groups * d.rows;
    if (grid_x == 0 || total_rows == 0) return cudaSuccess;
    const int64_t grid_y =
        std::min({total_rows, kMaxGridY, std::max<int64_t>(1, kTargetCtas / grid_x)});
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y));
    if (d.bf16) {
        if (d.vec) {
            syntheticFillKernel<true, true><<<grid, kThreads, 0, stream>>>(d);
        } else {
            syntheticFillKernel<true, false><<<grid, kThreads, 0, stream>>>(d);
        }
    } else if (d.vec) {
        syntheticFillKernel<false, true><<<grid, kThreads, 0, stream>>>(d);
    } else {
        syntheticFillKernel<false, false><<<grid, kThreads, 0, stream>>>(d);
    }
    return cudaGetLastError();
}

cudaError_t launchCountMismatches(const void *a, const void *b, size_t bytes,
                                  unsigned long long *counter, cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    const bool vec =
        reinterpret_cast<uintptr_t>(a) % 16 == 0 && reinterpret_cast<uintptr_t>(b) % 16 == 0;
    const size_t units = vec ? bytes / 16 + 1 : bytes;
    const size_t blocks = std::min<size_t>((units + 255) / 256, 4096);
    countMismatchesKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        static_cast<const unsigned char *>(a), static_cast<const unsigned char *>(b), bytes, vec,
        counter);
    return cudaGetLastError();
}

}  // namespace weightsync::convert::detail
