#include "common/error.h"
#include "planner/geometry.h"
#include "planner/plan.h"

#include <algorithm>

namespace weightsync::planner {

namespace {

struct Interval {
    int64_t begin, end;
    int rank;
};

const Slot &slotAt(const RankPlan &rp, int64_t offset) {
    auto it = std::upper_bound(rp.slots.begin(), rp.slots.end(), offset,
                               [](int64_t off, const Slot &s) { return off < s.offset; });
    check(it != rp.slots.begin(), Errc::kInternal, "rank {}: write source {} precedes every slot",
          rp.rank, offset);
    return *(it - 1);
}

}  // namespace

void validatePlan(const layout::Layout &layout, const Plan &plan) {
    const auto &dests = layout.dests();
    std::vector<std::vector<LocalTensor>> local;
    local.reserve(plan.peers.size());
    for (const PeerSpec &p : plan.peers) local.push_back(localTensors(layout, p));
    // intervals[peer][dest]
    std::vector<std::vector<std::vector<Interval>>> written(
        plan.peers.size(), std::vector<std::vector<Interval>>(dests.size()));

    for (const RankPlan &rp : plan.ranks) {
        check(plan.mesh.writes(rp.rank) || (rp.writes.empty() && rp.slots.empty()), Errc::kInternal,
              "rank {} of HSDP replica {} must not write", rp.rank, plan.mesh.replica(rp.rank));
        for (const Write &w : rp.writes) {
            check(w.peer < plan.peers.size() && w.dest < dests.size() && w.bytes > 0,
                  Errc::kInternal, "rank {}: malformed write", rp.rank);
            const std::string &name = dests[w.dest].name;
            const std::string &peer = plan.peers[w.peer].name;
            const Slot &slot = slotAt(rp, w.src_offset);
            check(w.src_offset + w.bytes <= slot.offset + slot.bytes, Errc::kInternal,
                  "rank {}: write to '{}' on {} reads past its slot", rp.rank, name, peer);
            check(slot.dtype == dests[w.dest].dtype, Errc::kMismatch,
                  "rank {}: slot dtype {} written into '{}' ({}) on {}", rp.rank,
                  dtypeName(slot.dtype), name, dtypeName(dests[w.dest].dtype), peer);
            const int64_t size = local[w.peer][w.dest].bytes;
            check(w.dest_offset >= 0 && w.dest_offset + w.bytes <= size, Errc::kInternal,
                  "rank {}: write [{}, {}) past the end of '{}' ({} bytes) on {}", rp.rank,
                  w.dest_offset, w.dest_offset + w.bytes, name, size, peer);
            written[w.peer][w.dest].push_back({w.dest_offset, w.dest_offset + w.bytes, rp.rank});
        }
        int64_t slot_bytes = 0;
        for (const Slot &s : rp.slots) {
            check(s.offset + s.bytes <= rp.arena_bytes, Errc::kInternal,
                  "rank {}: slot past the arena", rp.rank);
            slot_bytes += s.bytes;
        }
        int64_t op_bytes = 0;
        for (const ConvOp &op : rp.ops) {
            const int64_t n = (op.g1 - op.g0) * (op.r1 - op.r0) * (op.c1 - op.c0);
            op_bytes += n * static_cast<int64_t>(dtypeSize(op.dtype));
            if (op.scale_offset >= 0) {
                op_bytes += (op.g1 - op.g0) * layout::ceilDiv(op.r1 - op.r0, 128) *
                            layout::ceilDiv(op.c1 - op.c0, 128) * 4;
            }
        }
        check(op_bytes == slot_bytes, Errc::kInternal,
              "rank {}: conversion ops fill {} bytes of {} slot bytes", rp.rank, op_bytes,
              slot_bytes);
    }

    for (size_t q = 0; q < plan.peers.size(); ++q) {
        for (size_t d = 0; d < dests.size(); ++d) {
            auto &iv = written[q][d];
            std::sort(iv.begin(), iv.end(),
                      [](const Interval &a, const Interval &b) { return a.begin < b.begin; });
            int64_t covered = 0;
            for (const Interval &i : iv) {
                check(i.begin >= covered, Errc::kInternal,
                      "bytes [{}, {}) of '{}' on {} are written twice (rank {})", i.begin,
                      std::min(covered, i.end), dests[d].name, plan.peers[q].name, i.rank);
                check(i.begin == covered, Errc::kInternal,
                      "bytes [{}, {}) of '{}' on {} are never written", covered, i.begin,
                      dests[d].name, plan.peers[q].name);
                covered = i.end;
            }
            check(covered == local[q][d].bytes, Errc::kInternal,
                  "bytes [{}, {}) of '{}' on {} are never written", covered, local[q][d].bytes,
                  dests[d].name, plan.peers[q].name);
        }
    }
}

}  // namespace weightsync::planner
