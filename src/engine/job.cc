#include "engine/job.h"

#include "common/error.h"
#include "common/json.h"
#include "layout/json_fields.h"
#include "layout/json_layout.h"
#include "layout/limits.h"
#include "layout/registry.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>

namespace weightsync::engine {

using nlohmann::json;

namespace {

constexpr int64_t kMaxTimeoutMs = static_cast<int64_t>(limits::kMaxTimeoutSeconds * 1000);
constexpr int64_t kMaxBytes = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxModelLength = 4096;
constexpr int64_t kMaxRetainVersions = 1 << 20;
constexpr int64_t kMaxPathLength = 4096;

std::vector<int> gpuList(const jsonfields::Fields &f, std::string_view key) {
    if (!f.has(key)) return {0};
    const json &list = f.array(key, limits::kMaxGpuOrdinal + 1);
    std::vector<int> out;
    for (size_t i = 0; i < list.size(); ++i) {
        out.push_back(static_cast<int>(jsonfields::integer(
            list[i], fmt::format("{}[{}]", f.name(key), i), 0, limits::kMaxGpuOrdinal)));
    }
    return out;
}

planner::EngineSpec engineSpec(const json &j, size_t index) {
    const jsonfields::Fields f(j, fmt::format("job spec: engines[{}]", index));
    planner::EngineSpec e;
    e.ranks = static_cast<int>(f.integer("ranks", 1, limits::kMaxInferenceRanks));
    e.tp = static_cast<int>(f.integer("tp", 1, limits::kMaxInferenceRanks));
    e.ep = static_cast<int>(f.integer("ep", 1, limits::kMaxInferenceRanks));
    if (!f.has("expert_maps")) return e;
    const json &maps = f.array("expert_maps", e.ranks);
    for (size_t r = 0; r < maps.size(); ++r) {
        const std::string where = fmt::format("{}[{}]", f.name("expert_maps"), r);
        check(maps[r].is_array() && static_cast<int64_t>(maps[r].size()) <= limits::kMaxExperts,
              Errc::kInvalidArgument, "{} must be a list of at most {} expert ids", where,
              limits::kMaxExperts);
        std::vector<int64_t> map;
        for (size_t i = 0; i < maps[r].size(); ++i) {
            map.push_back(jsonfields::integer(maps[r][i], fmt::format("{}[{}]", where, i), 0,
                                              limits::kMaxExperts - 1));
        }
        e.expert_maps.push_back(std::move(map));
    }
    return e;
}

}  // namespace

std::string_view deviceName(Device device) {
    return device == Device::kCuda ? "cuda" : "cpu";
}

Device parseDevice(std::string_view name) {
    if (name == "cpu") return Device::kCpu;
    if (name == "cuda") return Device::kCuda;
    fail(Errc::kInvalidArgument, "job spec: 'device' must be cpu or cuda, got '{}'", name);
}

transport::TransportChoice parseTransport(std::string_view name) {
    const auto choice = transport::parseChoice(name);
    check(choice.has_value(), Errc::kInvalidArgument,
          "job spec: 'transport' must be one of {}, got '{}'",
          fmt::join(transport::choiceNames(), ", "), name);
    return *choice;
}

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
              {"transport", transport::choiceName(transport)},
              {"transport_options", transport_options},
              {"fs_keep", fs_keep},
              {"fs_file_bytes", fs_file_bytes},
              {"fs_config", fs_config},
              {"verify", verify},
              {"staging", staging},
              {"checksum", checksum},
              {"flip", flip},
              {"flip_copy", flip_copy},
              {"device", deviceName(device)},
              {"trainer_gpus", trainer_gpus},
              {"inference_gpus", inference_gpus},
              {"init_timeout_ms", init_timeout.count()},
              {"step_timeout_ms", step_timeout.count()},
              {"liveness_ttl_ms", liveness_ttl.count()},
              {"rejoin_timeout_ms", rejoin_timeout.count()},
              {"retain_versions", retain_versions},
              {"launcher_collects", launcher_collects}};
    if (layers) j["layers"] = *layers;
    if (!fs_root.empty()) j["fs_root"] = fs_root;
    if (!layout.is_null()) j["layout"] = layout;
    return j;
}

void JobSpec::validate() const {
    check(!model.empty() && static_cast<int64_t>(model.size()) <= kMaxModelLength,
          Errc::kInvalidArgument,
          "job spec: 'model' must be a model name or layout file of 1 to {} "
          "characters",
          kMaxModelLength);
    if (layers) {
        check(*layers >= 1 && *layers <= limits::kMaxLayers, Errc::kInvalidArgument,
              "job spec: 'layers' must be in [1, {}], got {}", limits::kMaxLayers, *layers);
    }
    check(!flip_copy || flip, Errc::kInvalidArgument,
          "job spec: 'flip_copy' chooses how 'flip' flips; it needs 'flip'");
    check(!flip || staging, Errc::kInvalidArgument,
          "job spec: 'flip' needs 'staging' (the wire phase writes into the staging copy while "
          "the live weights keep serving)");
    check(layout.is_null() || layout.is_object(), Errc::kInvalidArgument,
          "job spec: 'layout' must be a layout document (a JSON object), got {}",
          jsonfields::brief(layout));
    check(layout.is_null() || !layers, Errc::kInvalidArgument,
          "job spec: 'layers' does not apply to a job that carries its own layout");
    try {
        mesh.validate();
        fleet.validate();
    } catch (const Error &e) {
        throw jsonfields::inContext(e, "job spec");
    }
    check(planner.gather_threshold_bytes >= 0, Errc::kInvalidArgument,
          "job spec: 'gather_threshold_bytes' must be >= 0, got {}",
          planner.gather_threshold_bytes);
    check(planner.stage_bytes >= 0, Errc::kInvalidArgument,
          "job spec: 'stage_bytes' must be >= 0, got {}", planner.stage_bytes);
    check(steps >= 1 && steps <= limits::kMaxSteps, Errc::kInvalidArgument,
          "job spec: 'steps' must be in [1, {}], got {}", limits::kMaxSteps, steps);
    check(transport_options.is_null() || transport_options.is_object(), Errc::kInvalidArgument,
          "job spec: 'transport_options' must be a JSON object, got {}",
          jsonfields::brief(transport_options));
    check(static_cast<int64_t>(fs_root.size()) <= kMaxPathLength, Errc::kInvalidArgument,
          "job spec: 'fs_root' must have at most {} characters", kMaxPathLength);
    check(fs_keep >= 1 && fs_keep <= kMaxRetainVersions, Errc::kInvalidArgument,
          "job spec: 'fs_keep' must be in [1, {}], got {}", kMaxRetainVersions, fs_keep);
    check(fs_file_bytes >= 1, Errc::kInvalidArgument,
          "job spec: 'fs_file_bytes' must be >= 1, got {}", fs_file_bytes);
    check(fs_config.is_null() || fs_config.is_object(), Errc::kInvalidArgument,
          "job spec: 'fs_config' must be a JSON object (a Hugging Face config), got {}",
          jsonfields::brief(fs_config));
    if (transport == transport::TransportChoice::kFilesystem) {
        check(!fs_root.empty(), Errc::kInvalidArgument,
              "job spec: transport 'filesystem' needs 'fs_root', the directory of the checkpoints");
        check(device == Device::kCpu, Errc::kUnsupported,
              "job spec: transport 'filesystem' writes and reads host memory; device '{}' is not "
              "supported with it",
              deviceName(device));
        check(!checksum, Errc::kUnsupported,
              "job spec: transport 'filesystem' checks every file of a checkpoint against the "
              "XXH3 in its manifest; 'checksum' (per write, in memory) does not apply to it");
    }
    for (const auto &[name, gpus] :
         {std::pair{"trainer_gpus", &trainer_gpus}, std::pair{"inference_gpus", &inference_gpus}}) {
        check(!gpus->empty() && static_cast<int64_t>(gpus->size()) <= limits::kMaxGpuOrdinal + 1,
              Errc::kInvalidArgument, "job spec: '{}' must list 1 to {} GPUs", name,
              limits::kMaxGpuOrdinal + 1);
        for (const int g : *gpus) {
            check(g >= 0 && g <= limits::kMaxGpuOrdinal, Errc::kInvalidArgument,
                  "job spec: '{}' has GPU {}, outside [0, {}]", name, g, limits::kMaxGpuOrdinal);
        }
    }
    for (const auto &[name, timeout] :
         {std::pair{"init_timeout_ms", init_timeout}, std::pair{"step_timeout_ms", step_timeout},
          std::pair{"liveness_ttl_ms", liveness_ttl}}) {
        check(timeout.count() >= 1 && timeout.count() <= kMaxTimeoutMs, Errc::kInvalidArgument,
              "job spec: '{}' must be in [1, {}] ms, got {}", name, kMaxTimeoutMs, timeout.count());
    }
    check(transport != transport::TransportChoice::kNccl || rejoin_timeout.count() == 0,
          Errc::kUnsupported,
          "job spec: the nccl transport forms its pairs once, at init: 'rejoin_timeout_ms' must be "
          "0 with it");
    check(retain_versions >= 1 && retain_versions <= kMaxRetainVersions, Errc::kInvalidArgument,
          "job spec: 'retain_versions' must be in [1, {}], got {}", kMaxRetainVersions,
          retain_versions);
}

JobSpec JobSpec::fromJson(const json &j) {
    // Parsing safety (the caller may have parsed without limits): transport_options is copied,
    // recursively. (Every integer field refuses floats itself, naming the field.)
    checkJsonDepth(j, "job spec", Errc::kInvalidArgument, limits::kMaxJsonDepth);
    const jsonfields::Fields f(j, "job spec");
    JobSpec s;
    s.model = f.string("model", kMaxModelLength);
    if (f.has("layers")) s.layers = f.integer("layers", 1, limits::kMaxLayers);
    if (f.has("layout")) s.layout = f.at("layout");
    const jsonfields::Fields m(f.at("mesh"), "job spec: mesh");
    s.mesh.replicas = static_cast<int>(m.integer("replicas", 1, limits::kMaxTrainerRanks));
    s.mesh.fsdp = static_cast<int>(m.integer("fsdp", 1, limits::kMaxTrainerRanks));
    s.mesh.ep = static_cast<int>(m.integer("ep", 1, limits::kMaxTrainerRanks));
    const json &engines = f.array("engines", limits::kMaxInferenceRanks);
    for (size_t i = 0; i < engines.size(); ++i)
        s.fleet.engines.push_back(engineSpec(engines[i], i));
    s.planner.gather_threshold_bytes = f.integer("gather_threshold_bytes", 0, kMaxBytes);
    s.planner.stage_bytes = f.integer("stage_bytes", 0, kMaxBytes, s.planner.stage_bytes);
    s.pipeline = f.boolean("pipeline", true);
    s.seed = f.unsignedInteger("seed");
    s.steps = static_cast<int>(f.integer("steps", 1, limits::kMaxSteps));
    s.transport = parseTransport(f.string("transport", 64));
    if (f.has("transport_options")) s.transport_options = f.at("transport_options");
    if (f.has("fs_config")) s.fs_config = f.at("fs_config");
    if (f.has("fs_root")) s.fs_root = f.string("fs_root", kMaxPathLength);
    s.fs_keep = static_cast<uint64_t>(
        f.integer("fs_keep", 1, kMaxRetainVersions, static_cast<int64_t>(s.fs_keep)));
    s.fs_file_bytes = f.integer("fs_file_bytes", 1, kMaxBytes, s.fs_file_bytes);
    s.verify = f.boolean("verify");
    s.staging = f.boolean("staging", false);
    s.checksum = f.boolean("checksum", s.checksum);
    s.flip = f.boolean("flip", false);
    s.flip_copy = f.boolean("flip_copy", false);
    s.device = parseDevice(f.string("device", "cpu", 64));
    s.trainer_gpus = gpuList(f, "trainer_gpus");
    s.inference_gpus = gpuList(f, "inference_gpus");
    s.init_timeout = std::chrono::milliseconds(f.integer("init_timeout_ms", 1, kMaxTimeoutMs));
    s.step_timeout = std::chrono::milliseconds(f.integer("step_timeout_ms", 1, kMaxTimeoutMs));
    s.liveness_ttl = std::chrono::milliseconds(
        f.integer("liveness_ttl_ms", 1, kMaxTimeoutMs, s.liveness_ttl.count()));
    s.rejoin_timeout = std::chrono::milliseconds(
        f.integer("rejoin_timeout_ms", 0, kMaxTimeoutMs, s.rejoin_timeout.count()));
    s.retain_versions = static_cast<uint64_t>(f.integer("retain_versions", 1, kMaxRetainVersions,
                                                        static_cast<int64_t>(s.retain_versions)));
    s.launcher_collects = f.boolean("launcher_collects", false);
    s.validate();
    return s;
}

JobSpec JobSpec::parse(const std::string &text) {
    return fromJson(jsonfields::parse(text, "job spec"));
}

layout::Layout jobLayout(const JobSpec &spec) {
    if (spec.layout.is_null()) return layout::resolveLayout(spec.model, spec.layers);
    try {
        return layout::layoutFromJson(spec.layout);
    } catch (const Error &e) {
        throw jsonfields::inContext(e, "job spec: 'layout'");
    }
}

}  // namespace weightsync::engine
