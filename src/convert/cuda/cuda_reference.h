#pragma once
// The reference converter on the GPU, for verifying received weights where they live: for one
// inference rank (planner::PeerSpec) and version, the expected destination bytes computed the
// straightforward way, exactly as convert::referenceConvert does on the CPU (take each source
// whole for the peer's experts, concatenate the fused parts in fp32, convert the whole
// destination, take the TP window), one expert at a time, then compared on the device. The
// sources are the synthetic weights of a seed, or whole trainer tensors in device memory (e.g.
// an FSDP model's full_tensor()s).

#include "layout/layout.h"
#include "planner/geometry.h"
#include "planner/topology.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace weightsync::convert {

class CudaReference {
  public:
    /// Synthetic weights of `seed` (convert::SyntheticGenerator's values); scratch on `device`.
    /// The layout must outlive the reference.
    CudaReference(const layout::Layout &layout, uint64_t seed, int device);
    /// Whole trainer tensors: `sources[i]` is source i (layout.sources() order) dense in its
    /// layout shape and dtype, in memory of `device`; the `step` arguments below are ignored.
    CudaReference(const layout::Layout &layout, std::vector<const void *> sources, int device);

    /// Enqueues the expected peer-local bytes of one conversion for version `step` into device
    /// buffers laid out as planner::localTensors describes them: `values` (dest) and, for FP8,
    /// `scales` (its scale tensor; ignored otherwise). Same bytes as convert::referenceConvert.
    void convert(const layout::Conversion &conv, const planner::PeerSpec &peer, uint64_t step,
                 void *values, void *scales, cudaStream_t stream);

    /// Mismatched bytes of every destination tensor (layout.dests() order) between the expected
    /// bytes of version `step` and tensors[i], DEVICE pointers to the peer's local tensors (sizes
    /// as planner::localTensors). Counted on the device; blocks on `stream`.
    std::vector<int64_t> compare(const planner::PeerSpec &peer, uint64_t step,
                                 std::span<const std::byte *const> tensors, cudaStream_t stream);

  private:
    /// Expected bytes of local group li (one expert, or the whole tensor) into values/scales,
    /// which point at that group's start.
    void convertGroup(const layout::Conversion &conv, const planner::LocalGeometry &geo,
                      const planner::PeerSpec &peer, int64_t li, uint64_t step, std::byte *values,
                      std::byte *scales, cudaStream_t stream);
    /// Grows the scratch buffers to what `conv` needs (waiting for `stream` before freeing).
    void reserve(const layout::Conversion &conv, const planner::LocalGeometry &geo, bool local_copy,
                 cudaStream_t stream);

    /// Rows [0, rows) of expert g of source `index` (all columns) of version `step`, densely.
    void fillSource(uint32_t index, int64_t g, int64_t rows, uint64_t step, void *out,
                    cudaStream_t stream) const;

    const layout::Layout &layout_;
    uint64_t seed_ = 0;
    std::vector<const void *> sources_;  // whole device tensors; empty: synthetic weights
    int device_;
    platform::DeviceBuffer fused_;      // [R][C] fp32
    platform::DeviceBuffer part_;       // one bf16 source part
    platform::DeviceBuffer converted_;  // [R][C] in the destination dtype
    platform::DeviceBuffer scales_;     // [R/128][C/128] fp32
    platform::DeviceBuffer local_;      // one local group: values, then scales
    platform::DeviceBuffer counters_;   // unsigned long long per destination tensor
};

/// One-shot CudaReference::compare.
std::vector<int64_t> compareLocalTensorsCuda(const layout::Layout &layout,
                                             const planner::PeerSpec &peer, uint64_t seed,
                                             uint64_t step,
                                             std::span<const std::byte *const> tensors, int device,
                                             cudaStream_t stream);

}  // namespace weightsync::convert
