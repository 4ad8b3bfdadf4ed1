#pragma once
// Deterministic synthetic trainer weights. Every element is a pure function of
// (seed, step, source tensor, global position), so any rank computes the same value for the same
// element: shards, gathered copies and the reference conversion all agree without any exchange.
// Magnitudes vary per 128x128 block over 2^-12 .. 2^4, a few blocks are all zero, and every value
// changes from one step to the next, as after an optimizer step.

#include "convert/source.h"
#include "layout/layout.h"
#include "planner/topology.h"

#include <cstddef>
#include <memory>
#include <vector>

namespace weightsync::convert {

/// Fills out, a dense [groups][rows][cols] block of source `index` starting at global expert g0 and
/// row r0, with the values of version `step` (bf16 sources hold bf16 values).
void syntheticFill(const layout::Layout &layout, uint32_t index, uint64_t seed, uint64_t step,
                   int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *out);

/// Produces any box of any source tensor: the ground-truth interface of the reference converter.
class SourceGenerator {
  public:
    virtual ~SourceGenerator() = default;
    virtual void fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
                      void *out) const = 0;
};

/// The fill of a generator that holds source `index` whole and dense at `tensor`: copies experts
/// [g0, g0 + groups) x rows [r0, r0 + rows), all columns, densely into out.
void copyFromWholeTensor(const layout::Layout &layout, uint32_t index, const std::byte *tensor,
                         int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *out);

class SyntheticGenerator : public SourceGenerator {
  public:
    SyntheticGenerator(const layout::Layout &layout, uint64_t seed, uint64_t step)
        : layout_(layout), seed_(seed), step_(step) {}
    void fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
              void *out) const override {
        syntheticFill(layout_, index, seed_, step_, g0, groups, r0, rows, out);
    }

  private:
    const layout::Layout &layout_;
    uint64_t seed_;
    uint64_t step_;
};

/// The box of a source tensor a trainer rank owns: its experts, or its FSDP rows (torch.chunk
/// split: ceil(R / fsdp) rows per rank, the last ranks shorter), or everything when not sharded.
struct ShardBox {
    int64_t g0 = 0, groups = 1, r0 = 0, rows = 0;
};
ShardBox trainerShardBox(const layout::Layout &layout, uint32_t index,
                         const planner::TrainerMesh &mesh, int rank);

/// One trainer rank's synthetic weights: its own shards plus whole copies of the sources the plan
/// gathers onto it. Buffers are allocated once; generate(step) rewrites them in place.
class SyntheticWeights : public SourceProvider {
  public:
    SyntheticWeights(const layout::Layout &layout, const planner::TrainerMesh &mesh, int rank,
                     const std::vector<uint32_t> &full_sources, uint64_t seed);
    void generate(uint64_t step);
    [[nodiscard]] SourceShard shard(uint32_t index) const override;
    [[nodiscard]] SourceShard full(uint32_t index) const override;
    [[nodiscard]] int64_t bytes() const { return bytes_; }

  private:
    struct Held {
        ShardBox box;
        std::unique_ptr<std::byte[]> data;
        bool full = false;
    };
    const layout::Layout &layout_;
    uint64_t seed_;
    std::vector<Held> shards_;
    std::vector<Held> fulls_;  // empty data unless gathered here
    int64_t bytes_ = 0;
};

}  // namespace weightsync::convert
