#pragma once
// The job description every agent reads from the coordinator at start-up: model, cluster shape,
// transport and timeouts. Written once by whoever launches the job (the demo, a test, a script).

#include "layout/layout.h"
#include "planner/plan.h"
#include "transport/selector.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::engine {

/// Where a job's weights, slots and destination tensors live.
enum class Device : uint8_t { kCpu, kCuda };
/// "cpu", "cuda".
std::string_view deviceName(Device device);
/// The job spec's names of a device / a transport, as its JSON and the command line spell them;
/// Error(kInvalidArgument) naming the field and the valid values otherwise.
Device parseDevice(std::string_view name);
transport::TransportChoice parseTransport(std::string_view name);

struct JobSpec {
    std::string model = "glm5-tiny";
    std::optional<int64_t> layers;
    /// The layout itself (a weightsync-layout/1 document), for models that are neither built in
    /// nor a file every agent can read — e.g. one derived from the two sides' modules. When set,
    /// it is the job's layout (`model` is its name, `layers` must be unset), so every agent gets
    /// the same layout from the spec.
    nlohmann::json layout;
    planner::TrainerMesh mesh;
    planner::Fleet fleet;
    planner::PlannerOptions planner;
    uint64_t seed = 1;
    int steps = 1;  // weight versions 1..steps are pushed
    transport::TransportChoice transport = transport::TransportChoice::kUcx;
    nlohmann::json transport_options;  // backend options (see transport/registry.h)
    /// transport "filesystem": trainers write each version as a checkpoint under
    /// <fs_root>/step_<N>/ (safetensors files of at most fs_file_bytes of tensors each) and
    /// inference ranks read it; after a commit the newest fs_keep step directories stay.
    std::string fs_root;
    uint64_t fs_keep = 2;
    int64_t fs_file_bytes = int64_t{4} << 30;
    /// A Hugging Face config.json (a JSON object; null: none) that trainer rank 0 writes into
    /// every step directory, e.g. the inference model's config with its quantization_config,
    /// so that transformers' from_pretrained opens the directory as that model.
    nlohmann::json fs_config;
    bool verify = true;    // inference ranks compare every byte with the reference
    bool staging = false;  // inference ranks receive into a staging copy, then commit
    /// Trainers checksum every write's source bytes and send the checksums with their done;
    /// every inference rank checksums what landed before it announces landed, and a mismatch
    /// fails the version everywhere, naming the tensor, the byte range and the trainer rank.
    bool checksum = false;
    /// Zero-pause updates (needs staging): inference ranks keep serving the live weights while
    /// the version lands in staging and pause only to make staging live (the flip), after every
    /// rank landed; they serve the new version after commit, as always. A rank whose memory is
    /// its own swaps the two arenas' roles (O(1)); one that must keep its addresses (the
    /// caller's tensors, readers that cannot follow) copies staging over live.
    bool flip = false;
    /// With flip: copy staging over live on every rank, never swap (benchmarks compare both).
    bool flip_copy = false;
    /// Convert stage k+1 while stage k's writes fly. Off: convert everything, then write
    /// everything, so that benchmarks measure each phase alone.
    bool pipeline = true;
    Device device = Device::kCpu;        // where weights, slots and tensors live
    std::vector<int> trainer_gpus{0};    // cuda: trainer rank r uses trainer_gpus[r % size]
    std::vector<int> inference_gpus{0};  // cuda: inference peer p uses inference_gpus[p % size]
    std::chrono::milliseconds init_timeout{120'000};
    std::chrono::milliseconds step_timeout{300'000};
    /// A participant that stops answering the coordinator for this long (dead, stopped, hung)
    /// is declared lost and fails the version in flight on every survivor.
    std::chrono::milliseconds liveness_ttl{1'500};
    /// How long a version waits, in its pause barrier, for an inference rank that was lost to
    /// come back as a new process with the same engine and rank (0: a lost rank fails every
    /// version until the job ends).
    std::chrono::milliseconds rejoin_timeout{0};
    /// Finished versions whose keys stay in the store for diagnosis (older ones are erased).
    uint64_t retain_versions = 4;
    /// Who erases finished versions' keys: trainer rank 0, or the job's launcher (which reads
    /// every version's results first, as `weightsync demo` does).
    bool launcher_collects = false;

    [[nodiscard]] nlohmann::json toJson() const;
    /// Reads a spec strictly (integers exact and in range, known fields of the right type) and
    /// validates it; throws Error(kInvalidArgument) naming the field.
    static JobSpec fromJson(const nlohmann::json &json);
    /// fromJson of a JSON text as the store holds it (bad JSON is Error(kInvalidArgument) too).
    static JobSpec parse(const std::string &text);
    /// Checks every value against its range (layout/limits.h): timeouts > 0, a valid mesh and
    /// fleet, ... Throws Error(kInvalidArgument) naming the field.
    /// Does not resolve the model: buildPlan(jobLayout(spec), ...) does that.
    void validate() const;
};

/// The job's layout: the spec's own `layout` document when it has one, else the built-in model
/// or layout file `model` names (with `layers`). Throws Error naming what is wrong.
layout::Layout jobLayout(const JobSpec &spec);

}  // namespace weightsync::engine
