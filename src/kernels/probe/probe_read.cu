// The probe kernel: a grid-stride sum of a range's 64-bit words (8-byte loads when the range is
// 8-byte aligned, byte loads otherwise and for the zero-padded last word), a warp-shuffle and
// shared-memory reduction, one atomicAdd per CTA.

#include "kernels/probe/probe_read.cuh"

namespace weightsync::kernels {

namespace {

constexpr int kThreads = 256;

/// Word `j` of a range of `bytes` bytes, byte by byte (unaligned ranges, the last word).
__device__ __forceinline__ uint64_t wordBytes(const unsigned char *base, uint64_t bytes,
                                              uint64_t j) {
    uint64_t w = 0;
    const uint64_t first = j * 8;
    for (uint64_t b = 0; b < 8 && first + b < bytes; ++b) {
        w |= static_cast<uint64_t>(base[first + b]) << (8 * b);
    }
    return w;
}

__global__ void __launch_bounds__(kThreads)
    probeKernel(const unsigned char *__restrict__ base, uint64_t bytes, uint64_t *sum) {
    const uint64_t words = (bytes + 7) / 8;
    const uint64_t full = bytes / 8;  // words with all 8 bytes inside the range
    const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kThreads;
    const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
    uint64_t acc = 0;
    if ((reinterpret_cast<uintptr_t>(base) & 7) == 0) {
        const auto *w = reinterpret_cast<const uint64_t *>(base);
        for (uint64_t j = first; j < full; j += stride) acc += w[j];
        for (uint64_t j = full + first; j < words; j += stride) acc += wordBytes(base, bytes, j);
    } else {
        for (uint64_t j = first; j < words; j += stride) acc += wordBytes(base, bytes, j);
    }
    for (int offset = 16; offset > 0; offset /= 2)
        acc += __shfl_down_sync(0xffffffffU, acc, offset);
    __shared__ uint64_t warp_sums[kThreads / 32];
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint64_t total = 0;
        for (int i = 0; i < kThreads / 32; ++i) total += warp_sums[i];
        atomicAdd(reinterpret_cast<unsigned long long *>(sum),
                  static_cast<unsigned long long>(total));
    }
}

}  // namespace

cudaError_t probeFold(const void *data, uint64_t bytes, uint64_t *sum, cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    if (data == nullptr || sum == nullptr) return cudaErrorInvalidValue;
    const uint64_t words = (bytes + 7) / 8;
    const uint64_t wanted = (words + kThreads - 1) / kThreads;
    const auto blocks = static_cast<unsigned>(wanted < kProbeMaxBlocks ? wanted : kProbeMaxBlocks);
    probeKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const unsigned char *>(data), bytes,
                                                 sum);
    return cudaGetLastError();
}

}  // namespace weightsync::kernels
