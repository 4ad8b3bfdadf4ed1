#include "planner/receives.h"

#include "common/error.h"

#include <algorithm>

namespace weightsync::planner {

std::vector<int> writersOf(const Plan &plan, uint32_t peer) {
    std::vector<int> out;
    for (const RankPlan &rp : plan.ranks) {
        const bool writes = std::any_of(rp.writes.begin(), rp.writes.end(),
                                        [&](const Write &w) { return w.peer == peer; });
        if (writes) out.push_back(rp.rank);
    }
    return out;
}

std::vector<uint32_t> readersOf(const Plan &plan, int rank) {
    check(rank >= 0 && static_cast<size_t>(rank) < plan.ranks.size(), Errc::kInvalidArgument,
          "trainer rank {} outside the plan's {} ranks", rank, plan.ranks.size());
    std::vector<uint32_t> out;
    for (const Write &w : plan.ranks[static_cast<size_t>(rank)].writes) out.push_back(w.peer);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::vector<Receive> receivesOf(const Plan &plan, uint32_t peer) {
    check(peer < plan.peers.size(), Errc::kInvalidArgument,
          "inference peer {} outside the plan's {} peers", peer, plan.peers.size());
    std::vector<Receive> out;
    for (const RankPlan &rp : plan.ranks) {
        for (const Write &w : rp.writes) {
            if (w.peer == peer) out.push_back({rp.rank, w.dest, w.stage, w.dest_offset, w.bytes});
        }
    }
    // Stable: within one trainer (and stage) the plan order stays.
    std::stable_sort(out.begin(), out.end(), [](const Receive &a, const Receive &b) {
        return a.stage != b.stage ? a.stage < b.stage : a.trainer < b.trainer;
    });
    return out;
}

}  // namespace weightsync::planner
