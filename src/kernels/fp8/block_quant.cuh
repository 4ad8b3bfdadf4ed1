#pragma once
// CUDA FP8 128x128 block quantizer: bit-for-bit the same bytes and scales as blockQuantizeFp8Ref.
// Framework-free: device pointers in, cudaError_t out. Includable from plain C++.

#include "kernels/fp8/e4m3.h"
#include "kernels/view.h"

#include <cuda_runtime_api.h>

namespace weightsync::kernels {

/// Most jobs one kernel launch carries; blockQuantizeFp8Batch splits larger batches.
constexpr int kMaxQuantJobsPerLaunch = 64;

struct QuantJob {
    ConstView3 src;
    View3 dst;
    View3 scales;
};

/// Enqueues the quantization of src into dst/scales on stream (all three are device memory and
/// must not overlap; views as for blockQuantizeFp8Ref). Bad views throw
/// weightsync::Error(kInvalidArgument) before anything is enqueued; launch failures are returned.
/// NaN/Inf are not reported by an exception: such a block gets a NaN scale and unspecified bytes,
/// and if nonfinite_blocks (device memory, may be null) is given, the number of such blocks is
/// atomically added to it. max_ctas > 0 caps the CTAs of the launch (each then quantizes several
/// blocks): a conversion that shares the GPU with copy-engine writes leaves them bandwidth.
cudaError_t blockQuantizeFp8(const ConstView3 &src, const View3 &dst, const View3 &scales,
                             cudaStream_t stream, unsigned int *nonfinite_blocks = nullptr,
                             int max_ctas = 0);

/// Quantizes count independent jobs with as few launches as possible (one per source dtype per
/// kMaxQuantJobsPerLaunch jobs). `jobs` is HOST memory, read before the call returns: descriptors
/// travel as kernel parameters, so there is no device allocation or copy and the call can be
/// captured in a CUDA graph. Job outputs must not overlap each other.
cudaError_t blockQuantizeFp8Batch(const QuantJob *jobs, int count, cudaStream_t stream,
                                  unsigned int *nonfinite_blocks = nullptr, int max_ctas = 0);

}  // namespace weightsync::kernels
