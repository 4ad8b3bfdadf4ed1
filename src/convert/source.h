#pragma once
// What a trainer rank holds of its source tensors, as the conversion layer reads it.

#include "common/dtype.h"

#include <cstdint>

namespace weightsync::convert {

/// A dense [groups][rows][cols] block of a source tensor's canonical [G, R, C] view, starting
/// at global expert g0 and global row r0 (all columns).
struct SourceShard {
    const void *data = nullptr;
    DType dtype = DType::kBF16;
    int64_t g0 = 0, groups = 1;
    int64_t r0 = 0, rows = 1;
    int64_t cols = 1;
    int64_t row_stride = 0;  // elements between rows; groups are rows * row_stride apart
};

/// The trainer's weights as the engine reads them. Implementations: synthetic weights (demo,
/// tests), torch tensors (Python binding).
class SourceProvider {
  public:
    virtual ~SourceProvider() = default;
    /// The rank's own shard of source `index` (layout.sources() order).
    [[nodiscard]] virtual SourceShard shard(uint32_t index) const = 0;
    /// The whole tensor, for sources the plan gathers onto this rank (FSDP full_tensor()).
    [[nodiscard]] virtual SourceShard full(uint32_t index) const = 0;
    /// Where every pointer this provider hands out lives: -1 host memory, else the CUDA device
    /// ordinal. The trainer converts there (engine::makeTrainerCompute).
    [[nodiscard]] virtual int device() const { return -1; }
};

}  // namespace weightsync::convert
