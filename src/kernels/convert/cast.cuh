#pragma once
// CUDA cast/copy between bf16 and fp32 views: the same bits as castRef. Includable from plain C++.

#include "kernels/view.h"

#include <cuda_runtime_api.h>

namespace weightsync::kernels {

/// Enqueues dst = cast(src) on stream (device memory; semantics of castRef). Bad views throw
/// weightsync::Error(kInvalidArgument) before anything is enqueued; launch/copy failures are
/// returned. Same-dtype copies go through cudaMemcpyAsync/cudaMemcpy2DAsync, conversions through a
/// kernel (16-byte accesses when rows are aligned, scalar otherwise) of at most about max_ctas
/// CTAs when max_ctas > 0.
cudaError_t castCopy(const ConstView3 &src, const View3 &dst, cudaStream_t stream,
                     int max_ctas = 0);

}  // namespace weightsync::kernels
