#pragma once
// The landed-bytes checksum (one algorithm on the CPU and the GPU, so a trainer and a receiver
// agree whatever their devices). Of a byte range of n bytes, read as little-endian 64-bit words
// w_0 .. w_{m-1} (m = ceil(n / 8), the last one zero-padded):
//
//   sum      = SUM_j mix(w_j + (j + 1) * kChecksumKey)            (mod 2^64)
//   checksum = mix(sum ^ mix(n + kChecksumKey))
//
// mix is a bijection of 64-bit words (xor-shift, odd multiply, twice), so a change confined to
// one word (every single-byte flip, every bit flip) always changes its term and so the sum, and
// the final step is a bijection of the sum for a given length: such a change always changes the
// checksum. A larger change (a dropped write whose old bytes differ) goes unnoticed only if the
// sums collide (about 2^-64 for unstructured data). The sum is commutative, so a GPU grid reduces
// it in any order and gets the CPU's value bit for bit (kernels/checksum/checksum_ref.h).

#include <cstdint>

#if defined(__CUDACC__)
#define WEIGHTSYNC_CHECKSUM_FN __host__ __device__ __forceinline__
#else
#define WEIGHTSYNC_CHECKSUM_FN inline
#endif

namespace weightsync::kernels {

inline constexpr uint64_t kChecksumKey = 0x9E3779B97F4A7C15ULL;  // 2^64 / golden ratio
inline constexpr uint64_t kChecksumMul = 0xD6E8FEB86659FD93ULL;  // odd

WEIGHTSYNC_CHECKSUM_FN uint64_t checksumMix(uint64_t x) {
    x ^= x >> 32;
    x *= kChecksumMul;
    x ^= x >> 32;
    x *= kChecksumMul;
    x ^= x >> 32;
    return x;
}

/// The term of word `index` (0-based) of a range.
WEIGHTSYNC_CHECKSUM_FN uint64_t checksumTerm(uint64_t word, uint64_t index) {
    return checksumMix(word + (index + 1) * kChecksumKey);
}

/// The checksum of a range of `bytes` bytes whose terms sum to `sum`.
WEIGHTSYNC_CHECKSUM_FN uint64_t checksumFinal(uint64_t sum, uint64_t bytes) {
    return checksumMix(sum ^ checksumMix(bytes + kChecksumKey));
}

}  // namespace weightsync::kernels
