#include "tools/cli/topology_options.h"

#include "common/error.h"
#include "layout/limits.h"
#include "layout/registry.h"
#include "tools/cli/validators.h"

#include <limits>

namespace weightsync::cli {

void TopologyOptions::add(CLI::App &cmd) {
    cmd.add_option("--model", model,
                   "built-in model (glm5, glm5-medium, glm5-tiny, glm5-aligned, qwen3-8b, "
                   "qwen3-tiny, llama-tiny) or a layout JSON file")
        ->check(nonEmpty())
        ->capture_default_str();
    cmd.add_option("--layers", layers, "override the layer count of a built-in model")
        ->check(integerIn(1, limits::kMaxLayers));
    const auto trainer = integerIn(1, limits::kMaxTrainerRanks);
    const auto inference = integerIn(1, limits::kMaxInferenceRanks);
    cmd.add_option("--trainer-ranks", trainer_ranks, "trainer ranks (HSDP replicas x FSDP)")
        ->check(trainer)
        ->capture_default_str();
    cmd.add_option("--trainer-ep", trainer_ep, "trainer expert-parallel degree")
        ->check(trainer)
        ->capture_default_str();
    cmd.add_option("--trainer-replicas", trainer_replicas, "HSDP replicas (only replica 0 writes)")
        ->check(trainer)
        ->capture_default_str();
    cmd.add_option("--inference-engines", inference_engines, "inference engines")
        ->check(inference)
        ->capture_default_str();
    cmd.add_option("--inference-ranks", inference_ranks, "ranks (GPUs) per inference engine")
        ->check(inference)
        ->capture_default_str();
    cmd.add_option("--inference-ep", inference_ep,
                   "expert parallelism per engine: 1 (all experts everywhere) or = ranks")
        ->check(inference)
        ->capture_default_str();
    cmd.add_option("--inference-tp", inference_tp, "tensor parallelism per engine")
        ->check(inference)
        ->capture_default_str();
    const auto bytes = integerIn(0, std::numeric_limits<int64_t>::max());
    cmd.add_option("--gather-threshold", gather_threshold,
                   "sources smaller than this many bytes are gathered, not sent per shard")
        ->check(bytes)
        ->capture_default_str();
    cmd.add_option("--stage-bytes", stage_bytes,
                   "slot bytes per pipeline stage (0 = one stage per conversion)")
        ->check(bytes)
        ->capture_default_str();
}

layout::Layout TopologyOptions::layout() const {
    return layout::resolveLayout(model, layers);
}

planner::TrainerMesh TopologyOptions::mesh() const {
    check(trainer_ranks >= 1 && trainer_replicas >= 1, Errc::kInvalidArgument,
          "--trainer-ranks and --trainer-replicas must be >= 1");
    check(trainer_ranks % trainer_replicas == 0, Errc::kInvalidArgument,
          "--trainer-replicas {} does not divide --trainer-ranks {}", trainer_replicas,
          trainer_ranks);
    planner::TrainerMesh m{trainer_replicas, trainer_ranks / trainer_replicas, trainer_ep};
    m.validate();
    return m;
}

planner::Fleet TopologyOptions::fleet() const {
    check(inference_engines >= 1, Errc::kInvalidArgument, "--inference-engines must be >= 1");
    check(int64_t{inference_engines} * inference_ranks <= limits::kMaxInferenceRanks,
          Errc::kInvalidArgument,
          "--inference-engines {} x --inference-ranks {} exceeds the limit of {} inference ranks",
          inference_engines, inference_ranks, limits::kMaxInferenceRanks);
    planner::Fleet f;
    f.engines.assign(static_cast<size_t>(inference_engines),
                     planner::EngineSpec{inference_ranks, inference_tp, inference_ep, {}});
    f.validate();
    return f;
}

planner::PlannerOptions TopologyOptions::plannerOptions() const {
    planner::PlannerOptions o;
    o.gather_threshold_bytes = gather_threshold;
    o.stage_bytes = stage_bytes;
    return o;
}

}  // namespace weightsync::cli
