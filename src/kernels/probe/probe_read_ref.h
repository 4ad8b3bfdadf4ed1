#pragma once
// The probe step's fold (kernels/probe/probe_read.h) of a host byte range: the reference the
// CUDA kernel (probe_read.cuh) matches bit for bit.

#include <cstddef>
#include <cstdint>

namespace weightsync::kernels {

/// The sum (mod 2^64) of the little-endian 64-bit words of [data, data + bytes), the last one
/// zero-padded.
uint64_t probeFoldRef(const std::byte *data, uint64_t bytes);

}  // namespace weightsync::kernels
