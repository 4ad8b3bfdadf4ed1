#pragma once
// Where an inference rank's local tensors lie inside the whole tensors of a checkpoint: for each
// destination, the runs of bytes (offset in the whole tensor, offset in the local one, length)
// that make up the rank's slice after its expert map and TP split (planner::localGeometry), FP8
// scale grids included. Pure: no I/O.

#include "layout/layout.h"
#include "planner/topology.h"

#include <cstdint>
#include <vector>

namespace weightsync::checkpoint {

/// `bytes` bytes at `full` of the whole tensor are the local tensor's bytes at `local`.
struct Run {
    int64_t full = 0;
    int64_t local = 0;
    int64_t bytes = 0;
    bool operator==(const Run &) const = default;
};

/// For every destination tensor (layout.dests() order) the runs that fill `peer`'s local tensor,
/// in local order, each local byte exactly once; adjacent runs are merged. Throws as
/// planner::localGeometry does for splits the peer's shape cannot make.
std::vector<std::vector<Run>> shardRuns(const layout::Layout &layout,
                                        const planner::PeerSpec &peer);

}  // namespace weightsync::checkpoint
