#pragma once
// Command-line options shared by the commands that take a model and a cluster shape.

#include "layout/layout.h"
#include "planner/plan.h"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace weightsync::cli {

struct TopologyOptions {
    std::string model = "glm5-tiny";
    std::optional<int64_t> layers;
    int trainer_ranks = 4;
    int trainer_ep = 2;
    int trainer_replicas = 1;
    int inference_engines = 2;
    int inference_ranks = 2;
    int inference_ep = 2;
    int inference_tp = 1;
    int64_t gather_threshold = int64_t{2} << 20;
    int64_t stage_bytes = planner::PlannerOptions{}.stage_bytes;

    void add(CLI::App &cmd);
    [[nodiscard]] layout::Layout layout() const;
    [[nodiscard]] planner::TrainerMesh mesh() const;
    [[nodiscard]] planner::Fleet fleet() const;
    [[nodiscard]] planner::PlannerOptions plannerOptions() const;
};

}  // namespace weightsync::cli
