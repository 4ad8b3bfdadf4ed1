#pragma once
// Runs a rank's conversion ops on the CPU: source shards -> slots in the rank's arena, with the
// reference kernels (kernels/fp8/block_quant_ref.h, kernels/convert/cast_ref.h).

#include "convert/source.h"
#include "layout/layout.h"
#include "planner/plan.h"

#include <cstddef>
#include <span>

namespace weightsync::convert {

/// Source view of one op's box, checked against what the shard covers.
struct OpSource {
    const void *data;
    DType dtype;
    int64_t group_stride, row_stride;
};
OpSource opSource(const layout::Layout &layout, const planner::ConvOp &op,
                  const SourceProvider &sources);

/// Converts `ops` into `arena` (arena_bytes long). Errors name the source tensor.
void convertOpsCpu(const layout::Layout &layout, std::span<const planner::ConvOp> ops,
                   const SourceProvider &sources, std::byte *arena, int64_t arena_bytes);

}  // namespace weightsync::convert
