#pragma once
// Synthetic trainer weights generated on the GPU: bit for bit the values of convert::syntheticFill
// (convert/synthetic.h), at memory speed.

#include "layout/layout.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace weightsync::convert {

/// Enqueues on `stream` the fill of device_out, a dense [groups][rows][cols] block of source
/// `index` starting at global expert g0 and row r0, with the values of version `step` (bf16
/// sources get bf16 bits, fp32 sources fp32). Same values as syntheticFill. A box outside the
/// tensor throws kInvalidArgument; a launch failure throws kTransport. Like every launcher, it
/// launches on the current device, which must be the stream's.
void syntheticFillCuda(const layout::Layout &layout, uint32_t index, uint64_t seed, uint64_t step,
                       int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *device_out,
                       cudaStream_t stream);

}  // namespace weightsync::convert
