#include "engine/job.h"

#include "common/error.h"
#include "common/json.h"

namespace weightsync::engine {

using nlohmann::json;

json JobSpec::toJson() const {
    json engines = json::array();
    for (const planner::EngineSpec &e : fleet.engines) {
        engines.push_back(
            {{"ranks", e.ranks}, {"tp", e.tp}, {"ep", e.ep}, {"expert_maps", e.expert_maps}});
    }
    json j = {{"model", model},
              {"mesh", {{"replicas", mesh.replicas}, {"fsdp", mesh.fsdp}, {"ep", mesh.ep}}},
              {"engines", engines},
              {"gather_threshold_bytes", planner.gather_threshold_bytes},
              {"stage_bytes", planner.stage_bytes},
              {"pipeline", pipeline},
              {"seed", seed},
              {"steps", steps},
              {"transport", transport},
              {"transport_options", transport_options},
              {"verify", verify},
              {"staging", staging},
              {"device", device},
              {"trainer_gpus", trainer_gpus},
              {"inference_gpus", inference_gpus},
              {"init_timeout_ms", init_timeout.count()},
              {"step_timeout_ms", step_timeout.count()}};
    if (layers) j["layers"] = *layers;
    return j;
}

JobSpec JobSpec::fromJson(const json &j) {
    // Parsing safety (the caller may have parsed without limits): transport_options is copied,
    // recursively, and a float must not reach an integer field's conversion.
    checkJsonDepth(j, "job spec");
    checkNoFloats(j, "job spec");
    try {
        JobSpec s;
        s.model = j.at("model").get<std::string>();
        if (j.contains("layers")) s.layers = j.at("layers").get<int64_t>();
        const json &m = j.at("mesh");
        s.mesh = {m.at("replicas").get<int>(), m.at("fsdp").get<int>(), m.at("ep").get<int>()};
        for (const json &e : j.at("engines")) {
            s.fleet.engines.push_back(
                {e.at("ranks").get<int>(), e.at("tp").get<int>(), e.at("ep").get<int>(),
                 e.value("expert_maps", std::vector<std::vector<int64_t>>{})});
        }
        s.planner.gather_threshold_bytes = j.at("gather_threshold_bytes").get<int64_t>();
        s.planner.stage_bytes = j.value("stage_bytes", s.planner.stage_bytes);
        s.pipeline = j.value("pipeline", true);
        s.seed = j.at("seed").get<uint64_t>();
        s.steps = j.at("steps").get<int>();
        s.transport = j.at("transport").get<std::string>();
        s.transport_options = j.value("transport_options", json());
        s.verify = j.at("verify").get<bool>();
        s.staging = j.value("staging", false);
        s.device = j.value("device", std::string("cpu"));
        s.trainer_gpus = j.value("trainer_gpus", std::vector<int>{0});
        s.inference_gpus = j.value("inference_gpus", std::vector<int>{0});
        check(s.device == "cpu" || s.device == "cuda", Errc::kInvalidArgument,
              "job device must be cpu or cuda, got '{}'", s.device);
        check(!s.trainer_gpus.empty() && !s.inference_gpus.empty(), Errc::kInvalidArgument,
              "job needs at least one trainer GPU and one inference GPU");
        s.init_timeout = std::chrono::milliseconds(j.at("init_timeout_ms").get<int64_t>());
        s.step_timeout = std::chrono::milliseconds(j.at("step_timeout_ms").get<int64_t>());
        s.mesh.validate();
        s.fleet.validate();
        return s;
    } catch (const json::exception &e) {
        fail(Errc::kProtocol, "malformed job spec: {}", e.what());
    }
}

}  // namespace weightsync::engine
