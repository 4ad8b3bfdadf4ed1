#pragma once
// Runs a rank's conversion ops on the GPU: source shards (device memory) -> slots in the rank's
// arena (device memory), with the CUDA kernels (kernels/fp8/block_quant.cuh,
// kernels/convert/cast.cuh). Same boxes, strides and bytes as convert::convertOpsCpu.

#include "convert/source.h"
#include "layout/layout.h"
#include "planner/plan.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace weightsync::convert {

class CudaSlotConverter {
  public:
    /// `device` holds the converter's NaN/Inf counter; the layout must outlive the converter.
    /// max_ctas > 0 caps the CTAs of every conversion kernel (see blockQuantizeFp8).
    CudaSlotConverter(const layout::Layout &layout, int device, int max_ctas = 0);

    /// Enqueues `ops` (typically one pipeline stage) on `stream`: every FP8
    /// op of the call goes into blockQuantizeFp8Batch (up to 64 jobs per launch), the others
    /// through castCopy. `sources` hands out DEVICE pointers; `arena` is device memory of
    /// arena_bytes. Every op is checked before anything is enqueued (errors name the source
    /// tensor, as convertOpsCpu's do); a launch failure throws kTransport.
    void enqueue(std::span<const planner::ConvOp> ops, const SourceProvider &sources,
                 std::byte *arena, int64_t arena_bytes, cudaStream_t stream);

    /// Waits for `stream`, then returns and resets the number of FP8 blocks that held NaN/Inf
    /// since the last call. The CPU path throws on such blocks; the GPU path counts them, so a
    /// caller that wants the CPU's behaviour checks this is 0 after each push.
    uint32_t takeNonfiniteBlocks(cudaStream_t stream);

  private:
    const layout::Layout &layout_;
    int max_ctas_;
    platform::DeviceBuffer nonfinite_;  // one unsigned int
};

}  // namespace weightsync::convert
