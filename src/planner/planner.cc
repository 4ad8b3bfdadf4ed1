#include "planner/plan.h"

#include "common/error.h"
#include "layout/limits.h"
#include "planner/geometry.h"

#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <tuple>

namespace weightsync::planner {

using layout::Conversion;
using layout::ConvKind;
using layout::Layout;

namespace {

constexpr int64_t kMaxSlotAlignment = int64_t{1} << 20;

struct Piece {
    uint32_t part = 0;
    int64_t r0 = 0, r1 = 0;   // rows of the part
    int64_t row_off = 0;      // first row inside the segment
    int64_t block_off = 0;    // first scale block row inside the segment
    uint32_t chunk_base = 0;  // row-chunked segments: the chunk of the piece's first rows
};

/// A box of one conversion converted on one trainer rank: experts [g0, g1) x the pieces' rows x
/// columns [c0, c1), laid out contiguously in a value slot (and a scale slot for FP8).
struct Segment {
    uint32_t conversion = 0;
    int64_t g0 = 0, g1 = 1, c0 = 0, c1 = 1;
    std::vector<Piece> pieces;
    int64_t rows = 0, block_rows = 0;
    int64_t value_offset = 0, scale_offset = -1;
    size_t elem = 1;
    // Pipeline chunks: `group_chunk` experts at a time (chunk first_chunk + (g - g0) /
    // group_chunk), or, when group_chunk is 0, `row_chunk` rows of each piece at a time.
    int64_t group_chunk = 1, row_chunk = 0;
    uint32_t first_chunk = 0;

    [[nodiscard]] uint32_t chunkOf(int64_t g, const Piece &pc, int64_t row) const {
        if (group_chunk > 0) return first_chunk + static_cast<uint32_t>((g - g0) / group_chunk);
        return pc.chunk_base + static_cast<uint32_t>((row - pc.r0) / row_chunk);
    }
    /// First row after `row` (a row of piece pc) where a new chunk starts, or pc.r1.
    [[nodiscard]] int64_t chunkEnd(const Piece &pc, int64_t row) const {
        if (group_chunk > 0) return pc.r1;
        return std::min(pc.r1, pc.r0 + ((row - pc.r0) / row_chunk + 1) * row_chunk);
    }
};

/// A unit of pipelining before stages are numbered: converted bytes of one conversion.
struct Chunk {
    uint32_t conversion = 0;
    int64_t bytes = 0;
};

int64_t alignUp(int64_t v, int64_t a) {
    return (v + a - 1) / a * a;
}

/// Refuses, before any table is allocated, a job whose plan tables would be unreasonably large
/// (limits::kMaxPlanCells; the layout and topology are each within their own limits already).
void checkPlanSize(const Layout &layout, const TrainerMesh &mesh, const Fleet &fleet) {
    int64_t peers = 0;
    for (const EngineSpec &e : fleet.engines) peers += e.ranks;
    const auto cells = [](int64_t a, int64_t b, std::string_view what) {
        check(a * b <= limits::kMaxPlanCells, Errc::kInvalidArgument,
              "{} ({} x {}) exceed the planner's limit of {}", what, a, b, limits::kMaxPlanCells);
    };
    const auto dests = static_cast<int64_t>(layout.dests().size());
    const auto conversions = static_cast<int64_t>(layout.conversions().size());
    cells(peers, dests, "inference ranks x destination tensors");
    cells(mesh.ranks(), conversions, "trainer ranks x conversions");
    cells(mesh.ranks(), peers, "trainer ranks x inference ranks");
}

class PlanBuilder {
  public:
    PlanBuilder(const Layout &layout, const TrainerMesh &mesh, const Fleet &fleet,
                const PlannerOptions &options)
        : layout_(layout), mesh_(mesh), options_(options) {
        mesh.validate();
        fleet.validate();
        check(options.gather_threshold_bytes >= 0 && options.slot_alignment > 0 &&
                  options.slot_alignment <= kMaxSlotAlignment && options.stage_bytes >= 0,
              Errc::kInvalidArgument,
              "bad planner options: gather threshold {}, slot alignment {}, stage bytes {}",
              options.gather_threshold_bytes, options.slot_alignment, options.stage_bytes);
        checkPlanSize(layout, mesh, fleet);
        experts_ = layoutExperts(layout);
        plan_.layout_name = layout.name();
        plan_.layout_fingerprint = layout.fingerprint();
        plan_.mesh = mesh;
        plan_.options = options;
        plan_.peers = fleetPeers(fleet, experts_);
        plan_.ranks.resize(static_cast<size_t>(mesh.ranks()));
        for (int r = 0; r < mesh.ranks(); ++r) plan_.ranks[static_cast<size_t>(r)].rank = r;
        load_.assign(static_cast<size_t>(mesh.fsdp), 0);
        if (experts_ > 0) {
            check(experts_ % mesh.ep == 0, Errc::kInvalidArgument,
                  "{} experts are not divisible by trainer EP {}", experts_, mesh.ep);
            check(experts_ % mesh.fsdp == 0, Errc::kInvalidArgument,
                  "{} experts are not divisible by the FSDP shard degree {} (each rank must "
                  "own whole experts)",
                  experts_, mesh.fsdp);
        }
    }

    Plan build() {
        for (uint32_t c = 0; c < layout_.conversions().size(); ++c) planConversion(c);
        assignGathered();
        for (RankPlan &rp : plan_.ranks) finishRank(rp);
        validatePlan(layout_, plan_);
        return std::move(plan_);
    }

  private:
    struct GatherItem {
        uint32_t conversion;
        size_t window;
        uint32_t peer;
        int64_t bytes;
    };

    void planConversion(uint32_t c) {
        const Conversion &conv = layout_.conversions()[c];
        geos_.clear();
        for (const PeerSpec &p : plan_.peers) geos_.push_back(localGeometry(layout_, conv, p));
        // Peers grouped by the column window they hold (TP column splits differ by engine).
        windows_.clear();
        window_peers_.clear();
        for (uint32_t q = 0; q < geos_.size(); ++q) {
            const std::pair<int64_t, int64_t> w{geos_[q].col_lo, geos_[q].col_hi};
            auto it = std::find(windows_.begin(), windows_.end(), w);
            if (it == windows_.end()) {
                windows_.push_back(w);
                window_peers_.emplace_back();
                it = windows_.end() - 1;
            }
            window_peers_[static_cast<size_t>(it - windows_.begin())].push_back(q);
        }
        const auto &parts = geos_.front().part_rows;
        if (conv.expert) {
            const int64_t per = mesh_.expertsPerRank(experts_);
            for (int t = 0; t < mesh_.fsdp; ++t) {
                const int64_t e0 = mesh_.firstExpert(t, experts_);
                std::vector<Piece> pieces;
                for (uint32_t p = 0; p < parts.size(); ++p) pieces.push_back({p, 0, parts[p]});
                for (size_t w = 0; w < windows_.size(); ++w) {
                    Segment &seg = addSegment(t, c, e0, e0 + per, windows_[w], pieces, false);
                    for (uint32_t q : window_peers_[w]) emitWrites(t, seg, q);
                }
            }
            return;
        }
        std::vector<bool> per_shard(parts.size());
        bool any_gathered = false;
        for (uint32_t p = 0; p < parts.size(); ++p) {
            per_shard[p] = perShard(conv, p, parts[p]);
            any_gathered = any_gathered || !per_shard[p];
        }
        if (std::find(per_shard.begin(), per_shard.end(), true) != per_shard.end()) {
            for (int t = 0; t < mesh_.fsdp; ++t) {
                std::vector<Piece> pieces;
                for (uint32_t p = 0; p < parts.size(); ++p) {
                    if (!per_shard[p]) continue;
                    const int64_t per = parts[p] / mesh_.fsdp;
                    pieces.push_back({p, t * per, (t + 1) * per});
                }
                for (size_t w = 0; w < windows_.size(); ++w) {
                    Segment &seg = addSegment(t, c, 0, 1, windows_[w], pieces, false);
                    for (uint32_t q : window_peers_[w]) emitWrites(t, seg, q);
                }
            }
        }
        if (!any_gathered) return;
        std::vector<Piece> pieces;
        for (uint32_t p = 0; p < parts.size(); ++p) {
            if (!per_shard[p]) pieces.push_back({p, 0, parts[p]});
        }
        for (size_t w = 0; w < windows_.size(); ++w) {
            const size_t gw = gather_windows_.size();
            gather_windows_.push_back({c, windows_[w], pieces});
            for (uint32_t q : window_peers_[w]) {
                gather_items_.push_back({c, gw, q, pieceBytes(conv, geos_[q], pieces)});
            }
            gather_geos_.push_back(geos_);
        }
    }

    /// Per-shard when the rows split evenly over FSDP, FP8 shards stay block-aligned, and the
    /// source is big enough for per-shard writes to pay off (reference design 3.2).
    bool perShard(const Conversion &conv, uint32_t p, int64_t rows) const {
        const layout::SourceTensor &s = layout_.source(conv.sources[p]);
        if (s.fsdp_dim != 0 || rows % mesh_.fsdp != 0) return false;
        if (conv.kind == ConvKind::kQuantizeFp8 && (rows / mesh_.fsdp) % kFp8BlockSize != 0)
            return false;
        const int64_t bytes = numel(s.shape) * static_cast<int64_t>(dtypeSize(s.dtype));
        return bytes >= options_.gather_threshold_bytes;
    }

    int64_t pieceBytes(const Conversion &conv, const LocalGeometry &g,
                       const std::vector<Piece> &pieces) const {
        const int64_t elem = static_cast<int64_t>(dtypeSize(layout_.dest(conv.dest).dtype));
        int64_t bytes = 0;
        for (const Piece &pc : pieces) {
            const int64_t rows = g.part_hi[pc.part] - g.part_lo[pc.part];
            bytes += rows * g.cols * elem;
            if (g.quantized)
                bytes += layout::ceilDiv(rows, kFp8BlockSize) * g.blockCols() * kScaleBytes;
        }
        return bytes;
    }

    Segment &addSegment(int t, uint32_t c, int64_t g0, int64_t g1,
                        std::pair<int64_t, int64_t> window, std::vector<Piece> pieces, bool full) {
        const Conversion &conv = layout_.conversions()[c];
        RankPlan &rp = plan_.ranks[static_cast<size_t>(t)];
        Segment seg;
        seg.conversion = c;
        seg.g0 = g0;
        seg.g1 = g1;
        seg.c0 = window.first;
        seg.c1 = window.second;
        const DType dtype = layout_.dest(conv.dest).dtype;
        seg.elem = dtypeSize(dtype);
        for (Piece &pc : pieces) {
            pc.row_off = seg.rows;
            pc.block_off = seg.block_rows;
            seg.rows += pc.r1 - pc.r0;
            seg.block_rows += layout::ceilDiv(pc.r1 - pc.r0, kFp8BlockSize);
        }
        seg.pieces = std::move(pieces);
        const int64_t groups = g1 - g0;
        const int64_t cols = seg.c1 - seg.c0;
        seg.value_offset = addSlot(rp, c, false, dtype, {groups, seg.rows, cols});
        const bool fp8 = conv.kind == ConvKind::kQuantizeFp8;
        const int64_t bcols = layout::ceilDiv(cols, kFp8BlockSize);
        if (fp8)
            seg.scale_offset = addSlot(rp, c, true, DType::kF32, {groups, seg.block_rows, bcols});
        chunkSegment(seg);
        // One op per (chunk, piece): an op converts whole 128-row blocks of its piece, so its
        // bytes and scales are exactly those the unsplit op would have produced there.
        const auto add_op = [&](const Piece &pc, int64_t ga, int64_t gb, int64_t ra, int64_t rb) {
            ConvOp op;
            op.conversion = c;
            op.chunk = seg.chunkOf(g0 + ga, pc, pc.r0 + ra);
            op.source = static_cast<uint32_t>(layout_.sourceIndex(conv.sources[pc.part]));
            op.full = full;
            op.g0 = g0 + ga;
            op.g1 = g0 + gb;
            op.r0 = pc.r0 + ra;
            op.r1 = pc.r0 + rb;
            op.c0 = seg.c0;
            op.c1 = seg.c1;
            op.dtype = dtype;
            op.offset = seg.value_offset +
                        (ga * seg.rows + pc.row_off + ra) * cols * static_cast<int64_t>(seg.elem);
            op.group_stride = seg.rows * cols;
            op.row_stride = cols;
            if (fp8) {
                op.scale_offset =
                    seg.scale_offset +
                    (ga * seg.block_rows + pc.block_off + ra / kFp8BlockSize) * bcols * kScaleBytes;
                op.scale_group_stride = seg.block_rows * bcols;
                op.scale_row_stride = bcols;
            }
            rp.ops.push_back(op);
        };
        if (seg.group_chunk > 0) {
            for (int64_t ga = 0; ga < groups; ga += seg.group_chunk) {
                const int64_t gb = std::min(groups, ga + seg.group_chunk);
                for (const Piece &pc : seg.pieces) add_op(pc, ga, gb, 0, pc.r1 - pc.r0);
            }
        } else {
            for (const Piece &pc : seg.pieces) {
                for (int64_t ra = 0; ra < pc.r1 - pc.r0; ra += seg.row_chunk) {
                    add_op(pc, 0, 1, ra, std::min(pc.r1 - pc.r0, ra + seg.row_chunk));
                }
            }
        }
        if (full) {
            for (const Piece &pc : seg.pieces) {
                const auto source =
                    static_cast<uint32_t>(layout_.sourceIndex(conv.sources[pc.part]));
                if (std::find(rp.full_sources.begin(), rp.full_sources.end(), source) ==
                    rp.full_sources.end()) {
                    rp.full_sources.push_back(source);
                }
            }
        }
        segments_.push_back(std::move(seg));
        return segments_.back();
    }

    /// Splits a segment into pipeline chunks of about options_.stage_bytes: by experts when it
    /// has several, else by runs of 128-row blocks of each piece (block-aligned, so a chunk's
    /// scales are its own). Small segments are one chunk; numberStages() merges those.
    void chunkSegment(Segment &seg) {
        const int64_t groups = seg.g1 - seg.g0;
        const int64_t cols = seg.c1 - seg.c0;
        const int64_t row_bytes = cols * static_cast<int64_t>(seg.elem);
        const int64_t scale_row_bytes =
            seg.scale_offset >= 0 ? layout::ceilDiv(cols, kFp8BlockSize) * kScaleBytes : 0;
        const auto bytes_of = [&](int64_t g, int64_t rows) {
            return g * (rows * row_bytes + layout::ceilDiv(rows, kFp8BlockSize) * scale_row_bytes);
        };
        const int64_t group_bytes = seg.rows * row_bytes + seg.block_rows * scale_row_bytes;
        const int64_t target = options_.stage_bytes;
        seg.first_chunk = static_cast<uint32_t>(chunks_.size());
        check(groups >= 1 && seg.rows >= 1 && cols >= 1, Errc::kInternal,
              "conversion {}: empty segment ({} experts x {} rows x {} columns)", seg.conversion,
              groups, seg.rows, cols);
        if (target <= 0 || groups * group_bytes <= target || groups > 1) {
            seg.group_chunk =
                target <= 0
                    ? groups
                    : std::clamp<int64_t>(target / std::max<int64_t>(group_bytes, 1), 1, groups);
            for (int64_t ga = 0; ga < groups; ga += seg.group_chunk) {
                chunks_.push_back(
                    {seg.conversion, std::min(seg.group_chunk, groups - ga) * group_bytes});
            }
            return;
        }
        seg.group_chunk = 0;
        const int64_t block_row_bytes = kFp8BlockSize * row_bytes + scale_row_bytes;
        seg.row_chunk =
            std::max<int64_t>(1, target / std::max<int64_t>(block_row_bytes, 1)) * kFp8BlockSize;
        for (Piece &pc : seg.pieces) {
            pc.chunk_base = static_cast<uint32_t>(chunks_.size());
            for (int64_t ra = 0; ra < pc.r1 - pc.r0; ra += seg.row_chunk) {
                chunks_.push_back(
                    {seg.conversion, bytes_of(1, std::min(seg.row_chunk, pc.r1 - pc.r0 - ra))});
            }
        }
    }

    int64_t addSlot(RankPlan &rp, uint32_t c, bool scale, DType dtype, Shape shape) {
        Slot s;
        s.conversion = c;
        s.scale = scale;
        s.dtype = dtype;
        s.bytes = numel(shape) * static_cast<int64_t>(dtypeSize(dtype));
        s.shape = std::move(shape);
        s.offset = alignUp(rp.arena_bytes, options_.slot_alignment);
        rp.arena_bytes = s.offset + s.bytes;
        rp.slots.push_back(std::move(s));
        return rp.slots.back().offset;
    }

    void emitWrites(int t, const Segment &seg, uint32_t q) { emitWritesWith(t, seg, q, geos_[q]); }

    void emitWritesWith(int t, const Segment &seg, uint32_t q, const LocalGeometry &g) {
        RankPlan &rp = plan_.ranks[static_cast<size_t>(t)];
        for (int64_t gi = seg.g0; gi < seg.g1; ++gi) {
            const int64_t li = g.expert_pos[static_cast<size_t>(gi)];
            if (li < 0) continue;
            for (const Piece &pc : seg.pieces) {
                const int64_t lo = std::max(pc.r0, g.part_lo[pc.part]);
                const int64_t hi = std::min(pc.r1, g.part_hi[pc.part]);
                for (int64_t a = lo; a < hi;) {
                    const int64_t b = std::min(hi, seg.chunkEnd(pc, a));
                    check(b > a, Errc::kInternal, "conversion {}: chunk at row {} is empty",
                          seg.conversion, a);
                    emitRows(rp, seg, pc, g, q, {gi, li, a, b});
                    a = b;
                }
            }
        }
    }

    /// Rows [a, b) of one piece of expert gi (the peer's li-th local expert), all in one chunk.
    struct RowRun {
        int64_t gi, li, a, b;
    };

    /// The value write (and the scale write) of one row run to peer q.
    void emitRows(RankPlan &rp, const Segment &seg, const Piece &pc, const LocalGeometry &g,
                  uint32_t q, const RowRun &run) {
        const Conversion &conv = layout_.conversions()[seg.conversion];
        const auto [gi, li, a, b] = run;
        const int64_t cols = seg.c1 - seg.c0;
        const int64_t elem = static_cast<int64_t>(seg.elem);
        const int64_t bcols = layout::ceilDiv(cols, kFp8BlockSize);
        const uint32_t chunk = seg.chunkOf(gi, pc, a);
        const auto dest = static_cast<uint32_t>(layout_.destIndex(conv.dest));
        const int64_t seg_row = (gi - seg.g0) * seg.rows + pc.row_off + (a - pc.r0);
        const int64_t dst_row = li * g.rows + g.part_local[pc.part] + (a - g.part_lo[pc.part]);
        addWrite(rp, {q, dest, 0, chunk, seg.value_offset + seg_row * cols * elem,
                      dst_row * g.cols * elem, (b - a) * cols * elem});
        if (seg.scale_offset < 0) return;
        const int64_t part_end = g.part_rows[pc.part];
        check((a - pc.r0) % kFp8BlockSize == 0 && (dst_row - li * g.rows) % kFp8BlockSize == 0 &&
                  ((b - pc.r0) % kFp8BlockSize == 0 || b == part_end || b == pc.r1),
              Errc::kInternal, "'{}': scale rows of a write are not block-aligned", conv.dest);
        const auto scale_dest = static_cast<uint32_t>(layout_.destIndex(conv.scale));
        const int64_t sb0 = (a - pc.r0) / kFp8BlockSize;
        const int64_t sb1 = layout::ceilDiv(b - pc.r0, kFp8BlockSize);
        const int64_t src_b = (gi - seg.g0) * seg.block_rows + pc.block_off + sb0;
        const int64_t dst_b = li * g.blockRows() + (dst_row - li * g.rows) / kFp8BlockSize;
        addWrite(rp, {q, scale_dest, 0, chunk, seg.scale_offset + src_b * bcols * kScaleBytes,
                      dst_b * g.blockCols() * kScaleBytes, (sb1 - sb0) * bcols * kScaleBytes});
    }

    /// Appends w, or extends the last write when w continues it in both slot and destination
    /// and belongs to the same chunk (before stages are numbered) or stage (after).
    static void appendOrExtend(std::vector<Write> &writes, const Write &w, bool by_stage) {
        if (!writes.empty()) {
            Write &last = writes.back();
            const bool same = by_stage ? last.stage == w.stage : last.chunk == w.chunk;
            if (last.peer == w.peer && last.dest == w.dest && same &&
                last.src_offset + last.bytes == w.src_offset &&
                last.dest_offset + last.bytes == w.dest_offset) {
                last.bytes += w.bytes;
                return;
            }
        }
        writes.push_back(w);
    }

    static void addWrite(RankPlan &rp, const Write &w) {
        appendOrExtend(rp.writes, w, /*by_stage=*/false);
    }

    /// Gathered tensors: each (tensor, peer) pair goes to the least-loaded writing rank
    /// (longest-processing-time first), preferring a rank that already converts the tensor when
    /// that costs no more than one item of imbalance, so all ranks send about the same bytes.
    void assignGathered() {
        for (size_t t = 0; t < load_.size(); ++t) {
            load_[t] = 0;
            for (const Write &w : plan_.ranks[t].writes) load_[t] += w.bytes;
        }
        std::vector<size_t> order(gather_items_.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return gather_items_[a].bytes > gather_items_[b].bytes;
        });
        std::map<std::pair<size_t, int>, size_t> segment_of;  // (window, rank) -> segment index
        for (size_t idx : order) {
            const GatherItem &item = gather_items_[idx];
            const auto min_it = std::min_element(load_.begin(), load_.end());
            int chosen = static_cast<int>(min_it - load_.begin());
            int best_existing = -1;
            for (auto it = segment_of.lower_bound({item.window, 0});
                 it != segment_of.end() && it->first.first == item.window; ++it) {
                const int t = it->first.second;
                if (best_existing < 0 ||
                    load_[static_cast<size_t>(t)] < load_[static_cast<size_t>(best_existing)]) {
                    best_existing = t;
                }
            }
            if (best_existing >= 0 &&
                load_[static_cast<size_t>(best_existing)] <= *min_it + item.bytes) {
                chosen = best_existing;
            }
            auto [it, inserted] = segment_of.try_emplace({item.window, chosen}, 0);
            const GatherWindow &gw = gather_windows_[item.window];
            if (inserted) {
                addSegment(chosen, gw.conversion, 0, 1, gw.window, gw.pieces, true);
                it->second = segments_.size() - 1;
            }
            emitWritesWith(chosen, segments_[it->second], item.peer,
                           gather_geos_[item.window][item.peer]);
            load_[static_cast<size_t>(chosen)] += item.bytes;
        }
    }

    void finishRank(RankPlan &rp) {
        numberStages(rp);
        std::stable_sort(rp.ops.begin(), rp.ops.end(), [](const ConvOp &a, const ConvOp &b) {
            return std::tie(a.stage, a.conversion) < std::tie(b.stage, b.conversion);
        });
        std::sort(rp.writes.begin(), rp.writes.end(), [](const Write &a, const Write &b) {
            return std::tie(a.stage, a.peer, a.dest, a.dest_offset) <
                   std::tie(b.stage, b.peer, b.dest, b.dest_offset);
        });
        // Coalesce neighbours that the generation order did not put next to each other.
        std::vector<Write> merged;
        for (const Write &w : rp.writes) appendOrExtend(merged, w, /*by_stage=*/true);
        rp.writes = std::move(merged);
        rp.send_bytes = 0;
        for (const Write &w : rp.writes) rp.send_bytes += w.bytes;
        std::sort(rp.full_sources.begin(), rp.full_sources.end());
    }

    /// Numbers the stages of the rank's ops and writes from their chunks: chunks in conversion
    /// order (then creation order: experts and rows ascending), consecutive chunks merged while a
    /// stage stays within options_.stage_bytes.
    void numberStages(RankPlan &rp) const {
        std::vector<uint32_t> used;
        for (const ConvOp &op : rp.ops) used.push_back(op.chunk);
        const auto order = [&](uint32_t a, uint32_t b) {
            return std::tie(chunks_[a].conversion, a) < std::tie(chunks_[b].conversion, b);
        };
        std::sort(used.begin(), used.end(), order);
        used.erase(std::unique(used.begin(), used.end()), used.end());
        std::map<uint32_t, uint32_t> stage_of;
        const int64_t target = options_.stage_bytes;
        uint32_t stage = 0;
        int64_t filled = 0;
        for (size_t i = 0; i < used.size(); ++i) {
            const Chunk &chunk = chunks_[used[i]];
            const bool split = target > 0
                                   ? filled > 0 && filled + chunk.bytes > target
                                   : i > 0 && chunks_[used[i - 1]].conversion != chunk.conversion;
            if (split) {
                ++stage;
                filled = 0;
            }
            stage_of[used[i]] = stage;
            filled += chunk.bytes;
        }
        for (ConvOp &op : rp.ops) op.stage = stage_of.at(op.chunk);
        for (Write &w : rp.writes) {
            const auto it = stage_of.find(w.chunk);
            check(it != stage_of.end(), Errc::kInternal,
                  "rank {}: a write reads a chunk that no op converts", rp.rank);
            w.stage = it->second;
        }
    }

    struct GatherWindow {
        uint32_t conversion;
        std::pair<int64_t, int64_t> window;
        std::vector<Piece> pieces;
    };

    const Layout &layout_;
    TrainerMesh mesh_;
    PlannerOptions options_;
    int64_t experts_ = 0;
    Plan plan_;
    std::vector<LocalGeometry> geos_;
    std::vector<std::pair<int64_t, int64_t>> windows_;
    std::vector<std::vector<uint32_t>> window_peers_;
    std::deque<Segment> segments_;
    std::vector<Chunk> chunks_;
    std::vector<GatherWindow> gather_windows_;
    std::vector<std::vector<LocalGeometry>> gather_geos_;
    std::vector<GatherItem> gather_items_;
    std::vector<int64_t> load_;
};

}  // namespace

Plan buildPlan(const Layout &layout, const TrainerMesh &mesh, const Fleet &fleet,
               const PlannerOptions &options) {
    return PlanBuilder(layout, mesh, fleet, options).build();
}

}  // namespace weightsync::planner
