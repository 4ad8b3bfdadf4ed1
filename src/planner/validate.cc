#include "common/error.h"
#include "planner/geometry.h"
#include "planner/plan.h"

#include <algorithm>
#include <set>

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

/// For every byte of a rank's arena, the last stage that writes it: a piecewise-constant map
/// built from the ops' byte ranges (bounding ranges, which only over-approximate).
class ReadyStages {
  public:
    explicit ReadyStages(const RankPlan &rp) {
        struct Event {
            int64_t at;
            bool open;
            uint32_t stage;
        };
        std::vector<Event> events;
        const auto add = [&](int64_t begin, int64_t end, uint32_t stage) {
            check(begin < end, Errc::kInternal, "rank {}: a conversion op fills no bytes [{}, {})",
                  rp.rank, begin, end);
            events.push_back({begin, true, stage});
            events.push_back({end, false, stage});
        };
        for (const ConvOp &op : rp.ops) {
            add(op.offset, valuesEnd(op), op.stage);
            if (op.scale_offset >= 0) add(op.scale_offset, scalesEnd(op), op.stage);
        }
        // Every range is non-empty, so a range's end sorts after its start and the stage it
        // closes is open when it is reached.
        std::sort(events.begin(), events.end(),
                  [](const Event &a, const Event &b) { return a.at < b.at; });
        std::multiset<uint32_t> open;
        for (size_t i = 0; i < events.size();) {
            const int64_t at = events[i].at;
            for (; i < events.size() && events[i].at == at; ++i) {
                if (events[i].open) {
                    open.insert(events[i].stage);
                    continue;
                }
                const auto it = open.find(events[i].stage);
                check(it != open.end(), Errc::kInternal,
                      "rank {}: op ranges of stage {} do not nest", rp.rank, events[i].stage);
                open.erase(it);
            }
            starts_.push_back(at);
            stages_.push_back(open.empty() ? -1 : static_cast<int64_t>(*open.rbegin()));
        }
    }

    /// The latest stage writing any byte of [begin, end), or -1 if none does.
    [[nodiscard]] int64_t latest(int64_t begin, int64_t end) const {
        const auto it = std::upper_bound(starts_.begin(), starts_.end(), begin);
        size_t i = it == starts_.begin() ? 0 : static_cast<size_t>(it - starts_.begin()) - 1;
        int64_t latest = -1;
        for (; i < starts_.size() && starts_[i] < end; ++i) latest = std::max(latest, stages_[i]);
        return latest;
    }

  private:
    std::vector<int64_t> starts_;  // segment i is [starts_[i], starts_[i + 1])
    std::vector<int64_t> stages_;
};

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
        check(std::is_sorted(rp.ops.begin(), rp.ops.end(),
                             [](const ConvOp &a, const ConvOp &b) { return a.stage < b.stage; }) &&
                  std::is_sorted(rp.writes.begin(), rp.writes.end(),
                                 [](const Write &a, const Write &b) { return a.stage < b.stage; }),
              Errc::kInternal, "rank {}: ops and writes must be sorted by stage", rp.rank);
        const ReadyStages ready(rp);
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
            const int64_t converted = ready.latest(w.src_offset, w.src_offset + w.bytes);
            check(converted >= 0 && converted <= static_cast<int64_t>(w.stage), Errc::kInternal,
                  "rank {}: the write to '{}' on {} is posted after stage {}, but its bytes are "
                  "converted in stage {}",
                  rp.rank, name, peer, w.stage, converted);
            written[w.peer][w.dest].push_back({w.dest_offset, w.dest_offset + w.bytes, rp.rank});
        }
        int64_t slot_bytes = 0;
        for (const Slot &s : rp.slots) {
            check(s.offset + s.bytes <= rp.arena_bytes, Errc::kInternal,
                  "rank {}: slot past the arena", rp.rank);
            slot_bytes += s.bytes;
        }
        int64_t op_bytes = 0;
        for (const ConvOp &op : rp.ops) op_bytes += outputBytes(op);
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
