#include "planner/stats.h"

#include <algorithm>

namespace weightsync::planner {

double PlanStats::predictedSeconds(double bytes_per_second) const {
    return static_cast<double>(std::max(trainer_send_bytes_max, inference_recv_bytes_max)) /
           bytes_per_second;
}

PlanStats planStats(const Plan &plan) {
    PlanStats s;
    s.trainer_ranks = static_cast<int>(plan.ranks.size());
    s.inference_ranks = static_cast<int>(plan.peers.size());
    std::vector<int64_t> recv(plan.peers.size(), 0);
    for (const RankPlan &rp : plan.ranks) {
        if (!plan.mesh.writes(rp.rank)) continue;
        ++s.writing_ranks;
        s.total_wire_bytes += rp.send_bytes;
        s.trainer_send_bytes_max = std::max(s.trainer_send_bytes_max, rp.send_bytes);
        s.writes_total += static_cast<int64_t>(rp.writes.size());
        s.writes_per_trainer_rank_max =
            std::max(s.writes_per_trainer_rank_max, static_cast<int64_t>(rp.writes.size()));
        if (!rp.ops.empty()) {
            s.stages_per_trainer_rank_max =
                std::max<int64_t>(s.stages_per_trainer_rank_max, rp.ops.back().stage + int64_t{1});
        }
        s.slot_bytes_per_trainer_rank_max =
            std::max(s.slot_bytes_per_trainer_rank_max, rp.arena_bytes);
        s.gathered_sources_per_rank_max =
            std::max(s.gathered_sources_per_rank_max, static_cast<int64_t>(rp.full_sources.size()));
        for (const Write &w : rp.writes) recv[w.peer] += w.bytes;
    }
    if (s.writing_ranks > 0) {
        s.trainer_send_bytes_mean =
            static_cast<double>(s.total_wire_bytes) / static_cast<double>(s.writing_ranks);
    }
    for (int64_t r : recv) s.inference_recv_bytes_max = std::max(s.inference_recv_bytes_max, r);
    return s;
}

nlohmann::json statsJson(const PlanStats &s) {
    return {{"trainer_ranks", s.trainer_ranks},
            {"writing_trainer_ranks", s.writing_ranks},
            {"inference_ranks", s.inference_ranks},
            {"total_wire_bytes", s.total_wire_bytes},
            {"trainer_send_bytes_max", s.trainer_send_bytes_max},
            {"trainer_send_bytes_mean", s.trainer_send_bytes_mean},
            {"trainer_send_imbalance",
             s.trainer_send_bytes_mean > 0
                 ? static_cast<double>(s.trainer_send_bytes_max) / s.trainer_send_bytes_mean
                 : 1.0},
            {"writes_total", s.writes_total},
            {"writes_per_trainer_rank_max", s.writes_per_trainer_rank_max},
            {"stages_per_trainer_rank_max", s.stages_per_trainer_rank_max},
            {"inference_recv_bytes_max", s.inference_recv_bytes_max},
            {"slot_bytes_per_trainer_rank_max", s.slot_bytes_per_trainer_rank_max},
            {"gathered_sources_per_rank_max", s.gathered_sources_per_rank_max},
            {"predicted_seconds_at_50GBps", s.predictedSeconds(50e9)}};
}

}  // namespace weightsync::planner
