#pragma once
// Device twin of convert::SyntheticWeights: one trainer rank's synthetic shards plus whole copies
// of the sources the plan gathers onto it, in GPU memory. The boxes are those of
// convert::trainerShardBox, so every byte equals the CPU provider's. One cudaMalloc at
// construction; generate() rewrites it in place on a stream.

#include "convert/source.h"
#include "convert/synthetic.h"
#include "layout/layout.h"
#include "planner/topology.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace weightsync::convert {

class CudaSyntheticWeights : public SourceProvider {
  public:
    /// Allocates the rank's shards and gathered sources on `device`. The layout must outlive this.
    CudaSyntheticWeights(const layout::Layout &layout, const planner::TrainerMesh &mesh, int rank,
                         const std::vector<uint32_t> &full_sources, uint64_t seed, int device);

    /// Enqueues the values of version `step` on `stream` (the caller synchronizes before reading
    /// them elsewhere, e.g. by converting on the same stream).
    void generate(uint64_t step, cudaStream_t stream);

    /// SourceShard.data are DEVICE pointers.
    [[nodiscard]] SourceShard shard(uint32_t index) const override;
    [[nodiscard]] SourceShard full(uint32_t index) const override;
    [[nodiscard]] int64_t bytes() const { return bytes_; }
    [[nodiscard]] int device() const override { return buffer_.device(); }

  private:
    struct Held {
        ShardBox box;
        int64_t offset = -1;  // into buffer_; -1 = not held
    };
    [[nodiscard]] SourceShard view(uint32_t index, const Held &held) const;

    const layout::Layout &layout_;
    uint64_t seed_;
    std::vector<Held> shards_;
    std::vector<Held> fulls_;
    int64_t bytes_ = 0;
    platform::DeviceBuffer buffer_;
};

}  // namespace weightsync::convert
