// Plan-performance benchmark: how long buildPlan (with its validation) takes for production
// shapes, and what the plans look like. Prints a table; --json-out writes the figures and the
// command that reproduces them.

#include "layout/registry.h"
#include "planner/plan.h"
#include "planner/stats.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

using namespace weightsync;

namespace {

struct BenchShape {
    std::string name, model;
    planner::TrainerMesh mesh;
    int engines, ranks, ep, tp;
};

}  // namespace

int main(int argc, char **argv) {
    std::string json_out;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--json-out" && i + 1 < argc) json_out = argv[++i];
        if (a == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    }
    const std::vector<BenchShape> shapes = {
        {"glm5 64x(FSDP64,EP8) -> 2x16 EP16", "glm5", {1, 64, 8}, 2, 16, 16, 1},
        {"glm5 128x(HSDP2,FSDP64,EP8) -> 4x16 EP16", "glm5", {2, 64, 8}, 4, 16, 16, 1},
        {"glm5 64x(FSDP64,EP8) -> 8x8 TP8", "glm5", {1, 64, 8}, 8, 8, 1, 8},
        {"qwen3-8b 8xFSDP8 -> 4x2 TP2", "qwen3-8b", {1, 8, 1}, 4, 2, 1, 2},
    };
    nlohmann::json rows = nlohmann::json::array();
    fmt::print("{:<44} {:>9} {:>9} {:>10} {:>9} {:>11} {:>11}\n", "shape", "plan s", "writes",
               "max/mean", "wire TB", "send GB max", "pred s@50");
    for (const BenchShape &s : shapes) {
        const layout::Layout l = layout::resolveLayout(s.model);
        planner::Fleet f;
        f.engines.assign(static_cast<size_t>(s.engines), {s.ranks, s.tp, s.ep, {}});
        std::vector<double> times;
        planner::PlanStats st;
        for (int r = 0; r < reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            const planner::Plan p = planner::buildPlan(l, s.mesh, f);
            times.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            st = planner::planStats(p);
        }
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        const double imbalance = st.trainer_send_bytes_max / st.trainer_send_bytes_mean;
        fmt::print("{:<44} {:>9.3f} {:>9} {:>10.4f} {:>9.3f} {:>11.2f} {:>11.3f}\n", s.name, median,
                   st.writes_per_trainer_rank_max, imbalance, st.total_wire_bytes / 1e12,
                   st.trainer_send_bytes_max / 1e9, st.predictedSeconds(50e9));
        nlohmann::json row = planner::statsJson(st);
        row["shape"] = s.name;
        row["plan_seconds_median"] = median;
        rows.push_back(row);
    }
    if (!json_out.empty()) {
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
        std::ofstream(json_out) << nlohmann::json{{"benchmark", "plan"},
                                                  {"command", cmd},
                                                  {"reps", reps},
                                                  {"rows", rows}}
                                       .dump(2)
                                << "\n";
    }
    return 0;
}
