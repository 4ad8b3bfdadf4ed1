#pragma once
// Where each destination lives on one inference rank: its local shape after the expert map and
// the TP split, and which global rows / columns of each fused source part it holds.

#include "layout/layout.h"
#include "planner/topology.h"

#include <vector>

namespace weightsync::planner {

/// One conversion as seen by one peer (canonical [G, R, C] coordinates).
struct LocalGeometry {
    int64_t groups = 1, rows = 1, cols = 1;  // local value extents
    std::vector<int64_t> part_rows;          // global rows of each source part
    std::vector<int64_t> part_lo, part_hi;   // rows of each part this peer holds
    std::vector<int64_t> part_local;         // local row offset of each part's window
    int64_t col_lo = 0, col_hi = 1;          // global columns this peer holds
    std::vector<int64_t> expert_pos;         // global expert -> local index, -1 if absent
    bool quantized = false;

    [[nodiscard]] int64_t blockRows() const { return layout::ceilDiv(rows, kFp8BlockSize); }
    [[nodiscard]] int64_t blockCols() const { return layout::ceilDiv(cols, kFp8BlockSize); }
};

/// Throws Errc::kInvalidArgument naming the destination when the peer's TP split does not
/// divide it, or splits FP8 scale blocks.
LocalGeometry localGeometry(const layout::Layout &layout, const layout::Conversion &conv,
                            const PeerSpec &peer);

/// A destination tensor as one inference rank allocates it.
struct LocalTensor {
    std::string name;
    Shape shape;
    DType dtype = DType::kBF16;
    int64_t bytes = 0;
};

/// Every destination tensor of the layout (weights and scales, in layout order), local to peer.
std::vector<LocalTensor> localTensors(const layout::Layout &layout, const PeerSpec &peer);

/// Number of routed experts in a layout (0 for dense models); all expert tensors must agree.
int64_t layoutExperts(const layout::Layout &layout);

}  // namespace weightsync::planner
