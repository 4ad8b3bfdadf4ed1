#pragma once
// The reference converter: the ground truth of every bit-exact test. Full trainer weights in,
// an inference rank's destination tensors out, computed the straightforward way (concatenate the
// fused sources, quantize the whole destination, then take the rank's experts and TP slice),
// independently of the planner's per-shard slots and writes.

#include "convert/synthetic.h"
#include "layout/layout.h"
#include "planner/topology.h"

#include <cstddef>
#include <vector>

namespace weightsync::convert {

/// Bytes of every destination tensor (layout.dests() order) as `peer` holds them.
std::vector<std::vector<std::byte>> referenceLocalTensors(const layout::Layout &layout,
                                                          const planner::PeerSpec &peer,
                                                          const SourceGenerator &sources);

/// One conversion only (destination and, for FP8, scale): out_values / out_scales receive the
/// peer-local bytes.
void referenceConvert(const layout::Layout &layout, const layout::Conversion &conv,
                      const planner::PeerSpec &peer, const SourceGenerator &sources,
                      std::vector<std::byte> &out_values, std::vector<std::byte> &out_scales);

}  // namespace weightsync::convert
