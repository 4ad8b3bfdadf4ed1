#pragma once
// Whole trainer weights held in host memory, and per-rank views of them: the trainer side of the
// in-process executor used by the property tests and the plan benchmark.

#include "convert/synthetic.h"
#include "planner/topology.h"

#include <cstddef>
#include <vector>

namespace weightsync::convert {

class HostWeights : public SourceGenerator {
  public:
    explicit HostWeights(const layout::Layout &layout);
    /// Regenerates every tensor from `generator` (e.g. SyntheticGenerator for a step).
    void load(const SourceGenerator &generator);
    [[nodiscard]] std::byte *data(uint32_t index) { return tensors_[index].data(); }
    [[nodiscard]] const std::byte *data(uint32_t index) const { return tensors_[index].data(); }
    void fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
              void *out) const override;
    [[nodiscard]] const layout::Layout &layout() const { return layout_; }

  private:
    const layout::Layout &layout_;
    std::vector<std::vector<std::byte>> tensors_;
};

/// What one trainer rank of `mesh` holds of HostWeights: its shards, and every tensor whole.
class RankView : public SourceProvider {
  public:
    RankView(const HostWeights &weights, const planner::TrainerMesh &mesh, int rank)
        : weights_(weights), mesh_(mesh), rank_(rank) {}
    [[nodiscard]] SourceShard shard(uint32_t index) const override;
    [[nodiscard]] SourceShard full(uint32_t index) const override;

  private:
    const HostWeights &weights_;
    planner::TrainerMesh mesh_;
    int rank_;
};

}  // namespace weightsync::convert
