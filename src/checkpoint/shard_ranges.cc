#include "checkpoint/shard_ranges.h"

#include "common/error.h"
#include "planner/geometry.h"

namespace weightsync::checkpoint {

namespace {

/// A window of global rows [lo, hi) that the peer holds at local row `local`.
struct RowWindow {
    int64_t lo = 0, hi = 0, local = 0;
};

void append(std::vector<Run> &runs, Run run) {
    if (run.bytes == 0) return;
    if (!runs.empty()) {
        Run &last = runs.back();
        if (last.full + last.bytes == run.full && last.local + last.bytes == run.local) {
            last.bytes += run.bytes;
            return;
        }
    }
    runs.push_back(run);
}

/// Runs of a [groups][rows][cols] local tensor cut out of a [G][R][C] whole one: local group i
/// is whole group experts[i], local rows come from `windows`, columns [c0, c1).
std::vector<Run> boxRuns(const std::vector<int64_t> &experts, int64_t rows, int64_t cols,
                         const std::vector<RowWindow> &windows, int64_t c0, int64_t c1,
                         int64_t local_rows, int64_t esize) {
    std::vector<Run> runs;
    const int64_t width = c1 - c0;
    for (size_t li = 0; li < experts.size(); ++li) {
        const int64_t ge = experts[li];
        for (const RowWindow &w : windows) {
            for (int64_t r = w.lo; r < w.hi; ++r) {
                const int64_t lr = w.local + (r - w.lo);
                append(runs, {((ge * rows + r) * cols + c0) * esize,
                              ((static_cast<int64_t>(li) * local_rows + lr) * width) * esize,
                              width * esize});
            }
        }
    }
    return runs;
}

}  // namespace

std::vector<std::vector<Run>> shardRuns(const layout::Layout &layout,
                                        const planner::PeerSpec &peer) {
    std::vector<std::vector<Run>> out(layout.dests().size());
    for (const layout::Conversion &conv : layout.conversions()) {
        const planner::LocalGeometry g = planner::localGeometry(layout, conv, peer);
        const layout::DestTensor &dest = layout.dest(conv.dest);
        const layout::Extent3 de = layout::canonicalExtent(dest.shape, conv.expert);
        std::vector<int64_t> experts{0};
        if (conv.expert) experts = peer.experts;
        // Row windows of the values: one per fused part, or the whole tensor when held whole
        // (then FP8 blocks may straddle parts and are taken whole too).
        std::vector<RowWindow> windows;
        if (g.rows == de.r) {
            windows.push_back({0, de.r, 0});
        } else {
            int64_t part_start = 0;
            for (size_t p = 0; p < g.part_rows.size(); ++p) {
                windows.push_back(
                    {part_start + g.part_lo[p], part_start + g.part_hi[p], g.part_local[p]});
                part_start += g.part_rows[p];
            }
        }
        out[layout.destIndex(conv.dest)] =
            boxRuns(experts, de.r, de.c, windows, g.col_lo, g.col_hi, g.rows,
                    static_cast<int64_t>(dtypeSize(dest.dtype)));
        if (!g.quantized) continue;
        // Scale grids: the same windows in 128-row blocks (split windows are block-aligned:
        // localGeometry refuses splits that cut a block).
        std::vector<RowWindow> blocks;
        for (const RowWindow &w : windows) {
            check(w.lo % kFp8BlockSize == 0 && w.local % kFp8BlockSize == 0, Errc::kInternal,
                  "'{}': row window [{}, {}) is not FP8-block aligned", conv.dest, w.lo, w.hi);
            blocks.push_back({w.lo / kFp8BlockSize, layout::ceilDiv(w.hi, kFp8BlockSize),
                              w.local / kFp8BlockSize});
        }
        out[layout.destIndex(conv.scale)] =
            boxRuns(experts, layout::ceilDiv(de.r, kFp8BlockSize),
                    layout::ceilDiv(de.c, kFp8BlockSize), blocks, g.col_lo / kFp8BlockSize,
                    layout::ceilDiv(g.col_hi, kFp8BlockSize), g.blockRows(), kScaleBytes);
    }
    return out;
}

}  // namespace weightsync::checkpoint
