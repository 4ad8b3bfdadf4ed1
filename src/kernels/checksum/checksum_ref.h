#pragma once
// The CPU checksum of host byte ranges (kernels/checksum/checksum.h defines it); the reference
// the CUDA kernel (checksum.cuh) matches bit for bit, and the engine's CPU path.

#include <cstddef>
#include <cstdint>

namespace weightsync::kernels {

/// The sum of the terms of the words of [data, data + bytes), before checksumFinal(). On x86-64
/// CPUs with AVX-512DQ, 16 words at a time (the 64-bit multiplies of the scalar loop bound it to
/// a few GB/s per core); otherwise checksumSumPortable(). The same bits either way.
uint64_t checksumSumRef(const std::byte *data, uint64_t bytes);

/// The same sum, one word at a time on any CPU (tests compare the two).
uint64_t checksumSumPortable(const std::byte *data, uint64_t bytes);

/// checksumFinal(checksumSumRef(data, bytes), bytes).
uint64_t checksumRef(const std::byte *data, uint64_t bytes);

}  // namespace weightsync::kernels
