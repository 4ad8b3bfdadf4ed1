#include "planner/topology.h"

#include "common/error.h"
#include "layout/limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>

namespace weightsync::planner {

void TrainerMesh::validate() const {
    check(replicas >= 1 && fsdp >= 1 && ep >= 1, Errc::kInvalidArgument,
          "trainer mesh needs replicas, fsdp and ep >= 1 (got {}, {}, {})", replicas, fsdp, ep);
    check(int64_t{replicas} * fsdp <= limits::kMaxTrainerRanks, Errc::kInvalidArgument,
          "trainer mesh of {} replicas x FSDP {} exceeds the limit of {} trainer ranks", replicas,
          fsdp, limits::kMaxTrainerRanks);
    check(fsdp % ep == 0, Errc::kInvalidArgument,
          "trainer EP degree {} must divide the FSDP shard degree {}", ep, fsdp);
}

int64_t TrainerMesh::firstExpert(int rank, int64_t experts) const {
    const int f = fsdpIndex(rank);
    const int ep_rank = f % ep;
    const int inner = f / ep;
    return ep_rank * (experts / ep) + inner * (experts / fsdp);
}

void Fleet::validate() const {
    check(!engines.empty(), Errc::kInvalidArgument, "inference fleet has no engines");
    check(static_cast<int64_t>(engines.size()) <= limits::kMaxInferenceRanks,
          Errc::kInvalidArgument, "inference fleet has {} engines, more than the limit of {} ranks",
          engines.size(), limits::kMaxInferenceRanks);
    int64_t ranks = 0;
    for (size_t e = 0; e < engines.size(); ++e) {
        const EngineSpec &s = engines[e];
        check(s.ranks >= 1 && s.tp >= 1, Errc::kInvalidArgument,
              "engine {}: ranks and tp must be >= 1, got ranks {} and tp {}", e, s.ranks, s.tp);
        ranks += s.ranks;
        check(ranks <= limits::kMaxInferenceRanks, Errc::kInvalidArgument,
              "inference fleet exceeds the limit of {} ranks in all", limits::kMaxInferenceRanks);
        check(s.ranks % s.tp == 0, Errc::kInvalidArgument,
              "engine {}: TP {} does not divide its {} ranks", e, s.tp, s.ranks);
        check(s.ep == 1 || s.ep == s.ranks, Errc::kInvalidArgument,
              "engine {}: EP must be 1 (experts on every rank) or equal its rank count {}, got {}",
              e, s.ranks, s.ep);
        check(s.expert_maps.empty() || static_cast<int>(s.expert_maps.size()) == s.ranks,
              Errc::kInvalidArgument, "engine {}: {} expert maps for {} ranks", e,
              s.expert_maps.size(), s.ranks);
        for (size_t r = 0; r < s.expert_maps.size(); ++r) {
            const std::vector<int64_t> &map = s.expert_maps[r];
            check(static_cast<int64_t>(map.size()) <= limits::kMaxExperts, Errc::kInvalidArgument,
                  "engine {} rank {}: expert map of {} entries exceeds the limit of {} experts", e,
                  r, map.size(), limits::kMaxExperts);
            check(std::set<int64_t>(map.begin(), map.end()).size() == map.size(),
                  Errc::kInvalidArgument, "engine {} rank {}: expert map lists an expert twice", e,
                  r);
        }
    }
}

std::vector<PeerSpec> fleetPeers(const Fleet &fleet, int64_t experts) {
    fleet.validate();
    check(experts >= 0 && experts <= limits::kMaxExperts, Errc::kInvalidArgument,
          "a model with {} experts is outside [0, {}]", experts, limits::kMaxExperts);
    int64_t ranks = 0;
    for (const EngineSpec &s : fleet.engines) ranks += s.ranks;
    check(ranks * std::max<int64_t>(experts, 1) <= limits::kMaxPlanCells, Errc::kInvalidArgument,
          "{} inference ranks x {} experts exceed the planner's limit of {} (rank, expert) "
          "pairs",
          ranks, experts, limits::kMaxPlanCells);
    std::vector<PeerSpec> peers;
    for (size_t e = 0; e < fleet.engines.size(); ++e) {
        const EngineSpec &s = fleet.engines[e];
        for (int r = 0; r < s.ranks; ++r) {
            PeerSpec p;
            p.name = fmt::format("e{}r{}", e, r);
            p.engine = static_cast<int>(e);
            p.rank = r;
            p.tp = s.tp;
            p.tp_rank = r % s.tp;
            p.expert_parallel = s.ep > 1 || !s.expert_maps.empty();
            if (!s.expert_maps.empty()) {
                p.experts = s.expert_maps[r];
            } else if (experts > 0 && s.ep > 1) {
                check(experts % s.ep == 0, Errc::kInvalidArgument,
                      "engine {}: {} experts are not divisible by inference EP {}", e, experts,
                      s.ep);
                const int64_t per = experts / s.ep;
                p.experts.resize(per);
                std::iota(p.experts.begin(), p.experts.end(), r * per);
            } else {
                p.experts.resize(experts);
                std::iota(p.experts.begin(), p.experts.end(), 0);
            }
            for (int64_t g : p.experts) {
                check(g >= 0 && g < experts, Errc::kInvalidArgument,
                      "engine {} rank {}: expert id {} out of range [0, {})", e, r, g, experts);
            }
            peers.push_back(std::move(p));
        }
        std::vector<bool> held(static_cast<size_t>(experts), false);
        for (size_t i = peers.size() - s.ranks; i < peers.size(); ++i) {
            for (int64_t g : peers[i].experts) held[static_cast<size_t>(g)] = true;
        }
        for (int64_t g = 0; g < experts; ++g) {
            check(held[static_cast<size_t>(g)], Errc::kInvalidArgument,
                  "engine {}: no rank holds expert {}", e, g);
        }
    }
    return peers;
}

}  // namespace weightsync::planner
