// The checksum kernel: one CTA per tile, each thread summing the terms of a strided set of the
// tile's words (8-byte loads when the range is 8-byte aligned, byte loads otherwise and for the
// zero-padded last word), a warp-shuffle and shared-memory reduction, one atomicAdd per CTA.

#include "kernels/checksum/checksum.cuh"
#include "kernels/checksum/checksum.h"

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
    checksumKernel(const ChecksumTile *__restrict__ tiles, uint64_t *__restrict__ sums) {
    const ChecksumTile t = tiles[blockIdx.x];
    const auto *base = static_cast<const unsigned char *>(t.data);
    const uint64_t full = t.bytes / 8;  // words with all 8 bytes inside the range
    uint64_t acc = 0;
    if ((reinterpret_cast<uintptr_t>(base) & 7) == 0) {
        const auto *words = reinterpret_cast<const uint64_t *>(base);
        const uint64_t end = t.word_end < full ? t.word_end : full;
        uint64_t j = t.word_begin + threadIdx.x;
        for (; j + 3 * kThreads < end; j += 4 * kThreads) {
            const uint64_t a = words[j], b = words[j + kThreads];
            const uint64_t c = words[j + 2 * kThreads], d = words[j + 3 * kThreads];
            acc += checksumTerm(a, j) + checksumTerm(b, j + kThreads) +
                   checksumTerm(c, j + 2 * kThreads) + checksumTerm(d, j + 3 * kThreads);
        }
        for (; j < end; j += kThreads) acc += checksumTerm(words[j], j);
        for (j = (end > t.word_begin ? end : t.word_begin) + threadIdx.x; j < t.word_end;
             j += kThreads) {
            acc += checksumTerm(wordBytes(base, t.bytes, j), j);  // the padded last word
        }
    } else {
        for (uint64_t j = t.word_begin + threadIdx.x; j < t.word_end; j += kThreads) {
            acc += checksumTerm(wordBytes(base, t.bytes, j), j);
        }
    }
    for (int offset = 16; offset > 0; offset /= 2)
        acc += __shfl_down_sync(0xffffffffU, acc, offset);
    __shared__ uint64_t warp_sums[kThreads / 32];
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint64_t total = 0;
        for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
        atomicAdd(reinterpret_cast<unsigned long long *>(&sums[t.sum]),
                  static_cast<unsigned long long>(total));
    }
}

}  // namespace

cudaError_t checksumSums(const ChecksumTile *tiles, uint32_t count, uint64_t *sums,
                         cudaStream_t stream) {
    if (count == 0) return cudaSuccess;
    checksumKernel<<<count, kThreads, 0, stream>>>(tiles, sums);
    return cudaGetLastError();
}

}  // namespace weightsync::kernels
