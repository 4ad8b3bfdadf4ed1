// `weightsync plan`: builds, validates and summarizes a transfer plan for a model and cluster.

#include "planner/stats.h"
#include "tools/cli/commands.h"
#include "tools/cli/topology_options.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>

namespace weightsync::cli {

namespace {

struct PlanArgs {
    TopologyOptions topo;
    bool json = false;
};

void runPlan(const PlanArgs &args) {
    const layout::Layout layout = args.topo.layout();
    const auto start = std::chrono::steady_clock::now();
    const planner::Plan plan =
        planner::buildPlan(layout, args.topo.mesh(), args.topo.fleet(), args.topo.plannerOptions());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const planner::PlanStats stats = planner::planStats(plan);
    nlohmann::json out = planner::statsJson(stats);
    out["model"] = layout.name();
    out["layout_fingerprint"] = plan.layout_fingerprint;
    out["coverage_ok"] = true;  // buildPlan validates before returning, or throws
    out["plan_seconds"] = seconds;
    out["layout_dest_bytes"] = layout.destBytes();
    if (args.json) {
        fmt::print("{}\n", out.dump());
        return;
    }
    const double gb = 1e9;
    fmt::print(
        "plan for {} ({} trainer ranks: {} replica(s) x FSDP {} with EP {}; {} inference "
        "ranks)\n",
        layout.name(), stats.trainer_ranks, plan.mesh.replicas, plan.mesh.fsdp, plan.mesh.ep,
        stats.inference_ranks);
    fmt::print("  coverage          every destination byte written exactly once\n");
    fmt::print("  wire bytes        {:.3f} GB in {} writes\n", stats.total_wire_bytes / gb,
               stats.writes_total);
    fmt::print(
        "  per trainer rank  send max {:.3f} GB, mean {:.3f} GB (x{:.3f}), writes max {}, "
        "slots max {:.3f} GB\n",
        stats.trainer_send_bytes_max / gb, stats.trainer_send_bytes_mean / gb,
        out["trainer_send_imbalance"].get<double>(), stats.writes_per_trainer_rank_max,
        stats.slot_bytes_per_trainer_rank_max / gb);
    fmt::print("  per inference rank recv max {:.3f} GB\n", stats.inference_recv_bytes_max / gb);
    fmt::print("  predicted         {:.3f} s at 50 GB/s per link; planned in {:.3f} s\n",
               stats.predictedSeconds(50e9), seconds);
}

}  // namespace

void addPlanCommand(CLI::App &app) {
    auto args = std::make_shared<PlanArgs>();
    CLI::App *cmd = app.add_subcommand("plan", "build, validate and summarize a transfer plan");
    args->topo.add(*cmd);
    cmd->add_flag("--json", args->json, "print one JSON object");
    cmd->callback([args] { runPlan(*args); });
}

}  // namespace weightsync::cli
