#pragma once
// A transfer plan: for every trainer rank, the slot buffers it allocates once (carved from one
// arena), the conversion work that fills them, and the one-sided writes that carry slot bytes
// into the inference ranks' destination tensors. Built once by a pure, deterministic function
// and re-executed every step.

#include "layout/layout.h"
#include "planner/topology.h"

#include <cstdint>
#include <string>
#include <vector>

namespace weightsync::planner {

struct PlannerOptions {
    /// Sources smaller than this (global numel x trainer element size) are gathered rather than
    /// sent shard by shard: below it per-peer shards are too small to be worth a write each.
    int64_t gather_threshold_bytes = int64_t{2} << 20;
    /// Alignment of every slot inside the arena.
    int64_t slot_alignment = 256;
    /// Target slot bytes per pipeline stage. Larger conversions are split (by experts, else by
    /// 128-row blocks) and smaller consecutive ones merged, so that the writes of a stage start
    /// while the next stage converts. 0 = one stage per conversion, never split.
    int64_t stage_bytes = int64_t{256} << 20;
};

/// A trainer-side buffer inside the rank's arena.
struct Slot {
    uint32_t conversion = 0;  // index into layout.conversions()
    bool scale = false;       // the FP8 scale grid rather than the values
    DType dtype = DType::kBF16;
    Shape shape;         // [G, rows, cols], or [G, block rows, block cols] for scales
    int64_t offset = 0;  // arena byte offset
    int64_t bytes = 0;
};

/// Converts one box of a source into a slot: out[g][r][c] = convert(src[g0+g][r0+r][c0+c]).
struct ConvOp {
    uint32_t conversion = 0;
    uint32_t stage = 0;   // pipeline stage: ops run in stage order, one stage at a time
    uint32_t chunk = 0;   // the planner's unit of pipelining; a stage is a run of chunks
    uint32_t source = 0;  // index into layout.sources()
    bool full = false;    // reads the whole (gathered) source, not the rank's own shard
    int64_t g0 = 0, g1 = 1, r0 = 0, r1 = 1, c0 = 0, c1 = 1;  // global canonical coordinates
    DType dtype = DType::kBF16;                              // output element type
    int64_t offset = 0;                                      // arena byte offset of out[0][0][0]
    int64_t group_stride = 0, row_stride = 0;                // elements
    int64_t scale_offset = -1;  // FP8 only: arena byte offset of the scale grid
    int64_t scale_group_stride = 0, scale_row_stride = 0;
};

/// Arena byte just past the last value an op writes (the end of its strided box).
int64_t valuesEnd(const ConvOp &op);
/// Arena byte just past the last scale an op writes; -1 for an op without scales.
int64_t scalesEnd(const ConvOp &op);
/// Bytes an op writes: its values, and its scales if it quantizes.
int64_t outputBytes(const ConvOp &op);

/// One one-sided write: arena bytes [src_offset, +bytes) -> peer's destination tensor.
struct Write {
    uint32_t peer = 0;   // index into Plan::peers
    uint32_t dest = 0;   // index into layout.dests()
    uint32_t stage = 0;  // may be posted once every op of this and earlier stages has run
    uint32_t chunk = 0;  // the chunk whose op fills its source bytes (the first, once coalesced)
    int64_t src_offset = 0;
    int64_t dest_offset = 0;
    int64_t bytes = 0;
};

struct RankPlan {
    int rank = 0;
    int64_t arena_bytes = 0;
    std::vector<Slot> slots;
    std::vector<ConvOp> ops;             // sorted by stage, then conversion
    std::vector<Write> writes;           // sorted by stage, peer, destination, offset
    std::vector<uint32_t> full_sources;  // sources the rank needs whole (gathered)
    int64_t send_bytes = 0;
};

struct Plan {
    std::string layout_name;
    std::string layout_fingerprint;
    TrainerMesh mesh;
    std::vector<PeerSpec> peers;
    std::vector<RankPlan> ranks;  // every trainer rank; non-writing replicas have empty plans
    PlannerOptions options;
};

/// Builds and validates a plan. Throws Errc::kInvalidArgument with a clear message for shapes
/// the mesh or fleet cannot split, Errc::kInternal if validation finds a planner bug.
Plan buildPlan(const layout::Layout &layout, const TrainerMesh &mesh, const Fleet &fleet,
               const PlannerOptions &options = {});

/// Proves that every destination byte of every peer is written exactly once, that every write
/// stays inside its slot and destination and agrees on dtype, that every slot byte is filled
/// by exactly one conversion op, and that no write is staged before an op that fills its source
/// bytes. Throws naming the tensor and peer.
void validatePlan(const layout::Layout &layout, const Plan &plan);

}  // namespace weightsync::planner
