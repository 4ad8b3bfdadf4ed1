#pragma once
// The probe step's fold (kernels/probe/probe_read.h) of a device byte range on a CUDA stream:
// the same bits as probeFoldRef. Includable from plain C++.

#include <cuda_runtime_api.h>

#include <cstdint>

namespace weightsync::kernels {

/// Enqueues the fold of [data, data + bytes) (device memory) on `stream`, added into the
/// device word `*sum` (the caller zeroes it first, e.g. with cudaMemsetAsync). Returns the
/// launch error. A grid of at most kProbeMaxBlocks CTAs strides over the range.
cudaError_t probeFold(const void *data, uint64_t bytes, uint64_t *sum, cudaStream_t stream);

inline constexpr unsigned kProbeMaxBlocks = 1024;

}  // namespace weightsync::kernels
