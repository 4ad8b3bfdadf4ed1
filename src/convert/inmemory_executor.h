#pragma once
// Executes a plan inside one process, memcpy standing in for the transport: each writing rank
// converts its slots from its SourceProvider, then every write copies slot bytes into the peer's
// destination buffer. Used by the property tests and the plan benchmark.

#include "convert/source.h"
#include "layout/layout.h"
#include "planner/plan.h"

#include <cstddef>
#include <vector>

namespace weightsync::convert {

/// Destination tensors of one inference rank (layout.dests() order), sized per the plan.
using PeerTensors = std::vector<std::vector<std::byte>>;

std::vector<PeerTensors> allocatePeerTensors(const layout::Layout &layout,
                                             const planner::Plan &plan);

/// providers[rank] is the rank's weights (may be null for ranks that do not write).
/// Arenas persist across calls (slots are allocated once, as in the real engine).
class InMemoryExecutor {
  public:
    InMemoryExecutor(const layout::Layout &layout, const planner::Plan &plan);
    void execute(const std::vector<const SourceProvider *> &providers,
                 std::vector<PeerTensors> &peers);

  private:
    const layout::Layout &layout_;
    const planner::Plan &plan_;
    std::vector<std::vector<std::byte>> arenas_;
};

}  // namespace weightsync::convert
