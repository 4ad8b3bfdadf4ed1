#pragma once
// Summary figures of a plan (what `weightsync plan` prints).

#include "planner/plan.h"

#include <nlohmann/json.hpp>

namespace weightsync::planner {

struct PlanStats {
    int trainer_ranks = 0;
    int writing_ranks = 0;  // HSDP replica 0
    int inference_ranks = 0;
    int64_t total_wire_bytes = 0;
    int64_t trainer_send_bytes_max = 0;
    double trainer_send_bytes_mean = 0;  // over writing ranks
    int64_t writes_total = 0;
    int64_t writes_per_trainer_rank_max = 0;
    int64_t inference_recv_bytes_max = 0;
    int64_t slot_bytes_per_trainer_rank_max = 0;
    int64_t gathered_sources_per_rank_max = 0;
    int64_t stages_per_trainer_rank_max = 0;  // pipeline stages (see PlannerOptions::stage_bytes)
    /// Seconds for the busiest link (a trainer's send or an inference rank's receive) at rate.
    [[nodiscard]] double predictedSeconds(double bytes_per_second) const;
};

PlanStats planStats(const Plan &plan);
nlohmann::json statsJson(const PlanStats &stats);

}  // namespace weightsync::planner
