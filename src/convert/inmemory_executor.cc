#include "convert/inmemory_executor.h"

#include "common/error.h"
#include "convert/slot_converter.h"
#include "planner/geometry.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace weightsync::convert {

std::vector<PeerTensors> allocatePeerTensors(const layout::Layout &layout,
                                             const planner::Plan &plan) {
    std::vector<PeerTensors> peers;
    for (const planner::PeerSpec &p : plan.peers) {
        PeerTensors tensors;
        for (const planner::LocalTensor &t : planner::localTensors(layout, p)) {
            tensors.emplace_back(static_cast<size_t>(t.bytes));
        }
        peers.push_back(std::move(tensors));
    }
    return peers;
}

InMemoryExecutor::InMemoryExecutor(const layout::Layout &layout, const planner::Plan &plan)
    : layout_(layout), plan_(plan) {
    for (const planner::RankPlan &rp : plan.ranks) {
        arenas_.emplace_back(static_cast<size_t>(rp.arena_bytes));
    }
}

void InMemoryExecutor::execute(const std::vector<const SourceProvider *> &providers,
                               std::vector<PeerTensors> &peers) {
    check(providers.size() == plan_.ranks.size(), Errc::kInvalidArgument,
          "{} providers for {} trainer ranks", providers.size(), plan_.ranks.size());
    for (size_t r = 0; r < plan_.ranks.size(); ++r) {
        const planner::RankPlan &rp = plan_.ranks[r];
        if (rp.ops.empty()) continue;
        check(providers[r] != nullptr, Errc::kInvalidArgument, "rank {} has no weights", r);
        // Stage by stage as the engine runs it, over a poisoned arena: a write staged before
        // the op that fills its bytes copies poison instead of weights.
        std::fill(arenas_[r].begin(), arenas_[r].end(), std::byte{0x5A});
        size_t next_write = 0;
        for (size_t first = 0; first < rp.ops.size();) {
            const uint32_t stage = rp.ops[first].stage;
            size_t end = first;
            while (end < rp.ops.size() && rp.ops[end].stage == stage) ++end;
            convertOpsCpu(layout_, std::span(rp.ops).subspan(first, end - first), *providers[r],
                          arenas_[r].data(), rp.arena_bytes);
            first = end;
            const bool last = end == rp.ops.size();
            for (; next_write < rp.writes.size() && (last || rp.writes[next_write].stage <= stage);
                 ++next_write) {
                const planner::Write &w = rp.writes[next_write];
                std::vector<std::byte> &dst = peers[w.peer][w.dest];
                check(w.dest_offset + w.bytes <= static_cast<int64_t>(dst.size()), Errc::kInternal,
                      "write past '{}' on {}", layout_.dests()[w.dest].name,
                      plan_.peers[w.peer].name);
                std::memcpy(dst.data() + w.dest_offset, arenas_[r].data() + w.src_offset,
                            static_cast<size_t>(w.bytes));
            }
        }
    }
}

}  // namespace weightsync::convert
