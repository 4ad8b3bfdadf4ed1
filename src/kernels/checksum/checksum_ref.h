#pragma once
// The CPU checksum of host byte ranges (kernels/checksum/checksum.h defines it); the reference
// the CUDA kernel (checksum.cuh) matches bit for bit, and the engine's CPU path.

#include <cstddef>
#include <cstdint>

namespace weightsync::kernels {

/// The sum of the terms of the words of [data, data + bytes), before checksumFinal().
uint64_t checksumSumRef(const std::byte *data, uint64_t bytes);

/// checksumFinal(checksumSumRef(data, bytes), bytes).
uint64_t checksumRef(const std::byte *data, uint64_t bytes);

}  // namespace weightsync::kernels
