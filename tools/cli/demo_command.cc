// `weightsync demo`: a real end-to-end update on local processes. Starts the coordinator, the
// trainer ranks and the inference ranks, pushes --steps weight versions, and after each one every
// inference rank compares every byte with the reference converter's output. Exits non-zero on any
// mismatch or failure.

#include "common/error.h"
#include "common/subprocess.h"
#include "engine/agent_metrics.h"
#include "engine/compute.h"
#include "engine/local_job.h"
#include "engine/metrics.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "layout/limits.h"
#include "planner/geometry.h"
#include "tools/cli/commands.h"
#include "tools/cli/topology_options.h"
#include "tools/cli/validators.h"
#include "transport/registry.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <thread>

namespace weightsync::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct DemoArgs {
    TopologyOptions topo;
    int steps = 5;
    uint64_t seed = 1;
    std::string transport = "auto";
    std::string ucx_tls;
    std::string transport_options;  // JSON, as JobSpec::transport_options
    std::string fs_root;            // --transport filesystem: the checkpoints' directory
    uint64_t fs_keep = engine::JobSpec{}.fs_keep;
    int64_t fs_file_bytes = engine::JobSpec{}.fs_file_bytes;
    std::string device = "cpu";
    std::vector<int> trainer_gpus{0};
    std::vector<int> inference_gpus{0};
    bool json_out = false;
    bool no_verify = false;
    bool staging = false;
    bool checksum = false;
    bool flip = false;
    bool flip_copy = false;
    bool no_pipeline = false;
    double timeout_s = 300;
    std::string log_dir;
    std::string store;            // empty: the built-in coordinator
    int metrics_port = -1;        // -1: off; 0: every agent any free port; P: agent i gets P + i
    std::string job_secret_file;  // else $WEIGHTSYNC_JOB_SECRET, else a generated one
    bool verbose = false;
};

struct StepRow {
    uint64_t version = 0;
    double convert = 0, write = 0, barrier = 0, total = 0;
    double pause = 0, post = 0, drain = 0;  // parts: waiting for pauses; write = post + drain
    int64_t wire_bytes = 0, writes = 0, checked = 0, mismatched = 0;
    double hook = 0;        // slowest inference rank's post-update hooks (inside the pause)
    double paused = 0;      // slowest inference rank: its readers parked
    double probe_gap = -1;  // longest gap of any rank's stand-in generation loop (-1: none)
    int swapped = 0;        // inference ranks whose flip swapped their arenas
    bool verified = false;
};

namespace keys = engine::protocol::keys;
namespace protocol = engine::protocol;

/// Version v's row, once every inference rank resumed it (and verified it, when verifying);
/// nullopt before. Versions' keys are erased a few versions later, so rows are read as they end.
std::optional<StepRow> collectStep(control::Store &store, uint64_t v, int trainers,
                                   const std::vector<std::string> &peers, bool verify) {
    StepRow row;
    row.version = v;
    row.verified = verify;
    for (const std::string &p : peers) {
        const auto resumed = store.get(keys::resumed(v, p));
        if (!resumed) return std::nullopt;
        const auto res = protocol::decode<protocol::Resumed>(*resumed, v, keys::resumed(v, p));
        row.hook = std::max(row.hook, res.hook_seconds);
        row.paused = std::max(row.paused, res.paused_seconds);
        row.probe_gap = std::max(row.probe_gap, res.probe_gap_seconds);
        row.swapped += res.swapped ? 1 : 0;
        if (!verify) continue;
        const auto verified = store.get(keys::verified(v, p));
        if (!verified) return std::nullopt;
        const auto j = protocol::decode<protocol::Verified>(*verified, v, keys::verified(v, p));
        row.checked += j.checked_bytes;
        row.mismatched += j.mismatched_bytes;
        row.verified = row.verified && j.verified;
    }
    double finalize = 0;  // filesystem: rank 0 makes the checkpoint final after every drain
    for (int t = 0; t < trainers; ++t) {
        const auto raw = store.get(keys::metrics(v, t));
        if (!raw) return std::nullopt;
        const auto m = protocol::decode<engine::PushMetrics>(*raw, v, keys::metrics(v, t));
        row.convert = std::max(row.convert, m.convert_seconds);
        row.write = std::max(row.write, m.post_seconds + m.drain_seconds);
        row.pause = std::max(row.pause, m.pause_seconds);
        row.post = std::max(row.post, m.post_seconds);
        row.drain = std::max(row.drain, m.drain_seconds);
        row.barrier = std::max(row.barrier, m.barrier_seconds);
        row.total = std::max(row.total, m.total_seconds);
        row.wire_bytes += m.wire_bytes;
        row.writes += m.writes;
        finalize = std::max(finalize, m.finalize_seconds);
    }
    row.write += finalize;
    return row;
}

/// The nccl transport's needs, refused before any process starts: a build with it, GPU memory,
/// and never an inference rank on a trainer's GPU (NCCL cannot pair two ranks on one GPU).
void checkNcclDemo(const engine::JobSpec &spec) {
    transport::requireBuilt("nccl");
    check(spec.device == engine::Device::kCuda, Errc::kUnsupported,
          "the nccl transport needs CUDA device memory: run the demo with --device cuda");
    std::set<int> trainer_gpus;
    for (int t = 0; t < spec.mesh.ranks(); ++t) trainer_gpus.insert(engine::trainerGpu(spec, t));
    int peers = 0;
    for (const auto &e : spec.fleet.engines) peers += e.ranks;
    for (int p = 0; p < peers; ++p) {
        const int gpu = engine::inferenceGpu(spec, p);
        check(!trainer_gpus.contains(gpu), Errc::kUnsupported,
              "the nccl transport cannot pair an inference rank with a trainer on one GPU (GPU "
              "{}): give --inference-gpus other GPUs than --trainer-gpus",
              gpu);
    }
}

int runDemo(const DemoArgs &a) {
    engine::LocalJobOptions o;
    o.spec.model = a.topo.model;
    o.spec.layers = a.topo.layers;
    o.spec.mesh = a.topo.mesh();
    o.spec.fleet = a.topo.fleet();
    o.spec.planner = a.topo.plannerOptions();
    o.spec.seed = a.seed;
    o.spec.steps = a.steps;
    o.spec.transport = engine::parseTransport(a.transport);
    nlohmann::json options = nlohmann::json::object();
    if (!a.transport_options.empty()) {
        options = nlohmann::json::parse(a.transport_options, nullptr, false);
        check(options.is_object(), Errc::kInvalidArgument,
              "--transport-options must be a JSON object, got '{}'", a.transport_options);
    }
    if (!a.ucx_tls.empty()) {
        (a.transport == "auto" ? options["ucx"] : options)["transports"] = a.ucx_tls;
    }
    if (!options.empty()) o.spec.transport_options = options;
    check(a.transport != "filesystem" || !a.fs_root.empty(), Errc::kInvalidArgument,
          "--transport filesystem needs --fs-root DIR, the directory of the checkpoints");
    o.spec.fs_root = a.fs_root;
    o.spec.fs_keep = a.fs_keep;
    o.spec.fs_file_bytes = a.fs_file_bytes;
    o.spec.device = engine::parseDevice(a.device);
    o.spec.trainer_gpus = a.trainer_gpus;
    o.spec.inference_gpus = a.inference_gpus;
    o.spec.verify = !a.no_verify;
    o.spec.staging = a.staging || a.flip || a.flip_copy;
    o.spec.checksum = a.checksum;
    o.spec.flip = a.flip || a.flip_copy;
    o.spec.flip_copy = a.flip_copy;
    o.spec.pipeline = !a.no_pipeline;
    o.spec.launcher_collects = true;  // it reads every version's results, then erases them
    o.spec.step_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(std::ceil(a.timeout_s * 1000)));
    o.spec.init_timeout = o.spec.step_timeout;
    o.executable = selfExecutable();
    o.log_dir = a.log_dir;
    o.verbose = a.verbose;
    o.store = a.store;
    o.secret = jobSecret(a.job_secret_file);
    if (!o.secret) {
        try {
            o.secret = control::JobSecret::generate();  // every demo job is authenticated
        } catch (const Error &e) {
            if (e.code() != Errc::kUnsupported) throw;  // a build without libsodium
        }
    }
    if (!a.store.empty()) {
        // A shared store: a namespace of this run's own (erased when it ends).
        o.job_id = fmt::format("demo-{}-{}", ::getpid(),
                               std::chrono::system_clock::now().time_since_epoch().count());
    }
    check(a.steps >= 1, Errc::kInvalidArgument, "--steps must be >= 1");
    o.spec.validate();
    if (o.spec.transport == transport::TransportChoice::kNccl) checkNcclDemo(o.spec);
    // Fail fast, with the planner's own message, on shapes the job could never run.
    (void)planner::buildPlan(a.topo.layout(), o.spec.mesh, o.spec.fleet, o.spec.planner);
    if (!a.log_dir.empty()) {
        // The one thing written before the job starts, and only once every other input passed.
        std::error_code ec;
        std::filesystem::create_directories(a.log_dir, ec);
        check(!ec && ::access(a.log_dir.c_str(), W_OK | X_OK) == 0, Errc::kIo,
              "--log-dir: cannot create or write '{}'{}", a.log_dir,
              ec ? ": " + ec.message() : std::string());
    }
    const int trainers = o.spec.mesh.ranks();
    int peers = 0;
    for (const auto &e : o.spec.fleet.engines) peers += e.ranks;

    fmt::print(stderr,
               "weightsync demo: {} | trainer {} ranks (HSDP {} x FSDP {}, EP {}) | {} "
               "inference engines x {} ranks (EP {}, TP {}) | {} on {} | {} steps\n",
               o.spec.model, trainers, o.spec.mesh.replicas, o.spec.mesh.fsdp, o.spec.mesh.ep,
               a.topo.inference_engines, a.topo.inference_ranks, a.topo.inference_ep,
               a.topo.inference_tp, a.transport, a.device, a.steps);
    std::vector<std::string> peer_names;
    for (const planner::PeerSpec &p :
         planner::fleetPeers(o.spec.fleet, planner::layoutExperts(a.topo.layout()))) {
        peer_names.push_back(p.name);
    }
    if (a.metrics_port >= 0) {
        std::vector<std::string> agents;
        for (int t = 0; t < trainers; ++t) agents.push_back(fmt::format("trainer{}", t));
        for (const std::string &p : peer_names) agents.push_back("inference-" + p);
        for (size_t i = 0; i < agents.size(); ++i) {
            const int port = a.metrics_port == 0 ? 0 : a.metrics_port + static_cast<int>(i);
            check(port <= 65535, Errc::kInvalidArgument,
                  "--metrics-port {}: {} agents need ports up to {}", a.metrics_port, agents.size(),
                  a.metrics_port + agents.size() - 1);
            o.extra_args[agents[i]] = {"--metrics-port", std::to_string(port), "--metrics-host",
                                       "127.0.0.1"};
        }
    }
    engine::LocalJob job(o);
    const auto wall_start = Clock::now();
    job.start();
    fmt::print(stderr, "  started {} and {} agents (logs in {}{})\n",
               a.store.empty() ? fmt::format("coordinator on port {}", job.coordinatorPort())
                               : fmt::format("job {} on {}", o.job_id, a.store),
               trainers + peers, job.logDir(),
               a.log_dir.empty() ? ", removed unless the job fails" : "");

    // Progress; the job supervises its processes (a process that dies is reported to the others).
    std::vector<StepRow> rows;
    std::set<std::string> metrics_seen;
    const auto tick = [&] {
        if (a.metrics_port >= 0 &&
            metrics_seen.size() < static_cast<size_t>(trainers) + static_cast<size_t>(peers)) {
            for (const control::KeyValue &kv : job.store().list(engine::metricsKey(""))) {
                if (!metrics_seen.insert(kv.key).second) continue;
                fmt::print(stderr, "  metrics of {} at http://{}/metrics\n",
                           kv.key.substr(engine::metricsKey("").size()), kv.value);
            }
        }
        for (uint64_t v = rows.size() + 1; v <= static_cast<uint64_t>(a.steps); ++v) {
            const auto row = collectStep(job.store(), v, trainers, peer_names, o.spec.verify);
            if (!row) break;
            fmt::print(
                stderr, "  version {}/{}: {:.3f} s, {:.1f} MB in {} writes{}\n", v, a.steps,
                row->total, row->wire_bytes / 1e6, row->writes,
                o.spec.verify ? (row->verified ? ", verified on every rank" : ", MISMATCH") : "");
            rows.push_back(*row);
            // The launcher erases what it has read (the job says so): the store stays bounded.
            if (v > o.spec.retain_versions) {
                (void)job.store().erasePrefix(keys::versionPrefix(v - o.spec.retain_versions));
            }
        }
    };
    // Each version must end within the timeout; the job as a whole gets that per version.
    const auto codes = job.supervise(
        std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000 * (a.steps + 2))), tick);
    tick();
    std::string failure = job.failure();
    for (const auto &[name, code] : codes) {
        if (code != 0 && failure.empty()) {
            failure = fmt::format("process {} {} (log: {})", name,
                                  code < 0 ? "did not finish in time" : "failed", job.logOf(name));
        }
    }
    if (failure.empty() && rows.size() < static_cast<size_t>(a.steps)) {
        failure = fmt::format(
            "the results of version {} were erased before the launcher read them (raise the "
            "job's retain_versions)",
            rows.size() + 1);
    }
    const double wall = engine::secondsSince(wall_start);

    bool verified = o.spec.verify && failure.empty();
    int64_t mismatched = 0, wire = 0, checked = 0;
    double seconds = 0;
    json per_step = json::array();
    // How the ranks flipped: "swap" (arenas traded roles), "copy" (staging copied over live),
    // "mixed", or "none" without flip.
    const auto flip_kind = [&](int swapped) -> std::string {
        if (!o.spec.flip) return "none";
        if (swapped == peers) return "swap";
        return swapped == 0 ? "copy" : "mixed";
    };
    int swapped_min = peers;
    fmt::print("\n{:>4} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8} {:>8} {:>9}\n", "step",
               "convert s", "write s", "barrier s", "total s", "wire MB", "writes", "GB/s",
               "verified");
    for (const StepRow &r : rows) {
        verified = verified && r.verified;
        mismatched += r.mismatched;
        wire += r.wire_bytes;
        checked += r.checked;
        seconds += r.total;
        swapped_min = std::min(swapped_min, r.swapped);
        const double gbps = r.total > 0 ? r.wire_bytes / r.total / 1e9 : 0;
        fmt::print("{:>4} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f} {:>12.2f} {:>8} {:>8.2f} {:>9}\n",
                   r.version, r.convert, r.write, r.barrier, r.total, r.wire_bytes / 1e6, r.writes,
                   gbps, o.spec.verify ? (r.verified ? "yes" : "NO") : "off");
        per_step.push_back({{"version", r.version},
                            {"convert_s", r.convert},
                            {"write_s", r.write},
                            {"pause_s", r.pause},
                            {"post_s", r.post},
                            {"drain_s", r.drain},
                            {"barrier_s", r.barrier},
                            {"hook_s", r.hook},
                            {"paused_s", r.paused},
                            {"probe_gap_s", r.probe_gap},
                            {"flip", flip_kind(r.swapped)},
                            {"total_s", r.total},
                            {"wire_bytes", r.wire_bytes},
                            {"writes", r.writes},
                            {"checked_bytes", r.checked},
                            {"mismatched_bytes", r.mismatched},
                            {"verified", r.verified},
                            {"gbps", gbps}});
    }
    if (!failure.empty() || (o.spec.verify && !verified)) job.keepLogs();
    if (!failure.empty()) {
        fmt::print(stderr, "weightsync demo: FAILED: {} (logs kept in {})\n", failure,
                   job.logDir());
    }
    if (a.json_out) {
        const json out = {{"steps", a.steps},
                          {"verified", verified},
                          {"mismatched_bytes", mismatched},
                          {"checked_bytes", checked},
                          {"wire_bytes", wire},
                          {"seconds", seconds},
                          {"wall_seconds", wall},
                          {"model", o.spec.model},
                          {"transport", a.transport},
                          {"device", a.device},
                          {"trainer_ranks", trainers},
                          {"inference_ranks", peers},
                          {"error", failure},
                          {"per_step", per_step},
                          {"pipeline", o.spec.pipeline},
                          {"flip", flip_kind(rows.empty() ? 0 : swapped_min)},
                          {"stage_bytes", o.spec.planner.stage_bytes}};
        fmt::print("{}\n", out.dump());
    }
    if (!failure.empty()) return 1;
    if (o.spec.verify && !verified) return 3;
    return 0;
}

}  // namespace

void addDemoCommand(CLI::App &app) {
    auto a = std::make_shared<DemoArgs>();
    // The embedded default: GLM-5 tiny, 4 trainer ranks (FSDP 4 = 2 shards x EP 2),
    // 2 inference engines x 2 ranks with EP 2.
    a->topo.model = "glm5-tiny";
    a->topo.trainer_ranks = 4;
    a->topo.trainer_ep = 2;
    a->topo.inference_engines = 2;
    a->topo.inference_ranks = 2;
    a->topo.inference_ep = 2;
    CLI::App *cmd = app.add_subcommand("demo", "run an end-to-end update on local processes");
    a->topo.add(*cmd);
    cmd->add_option("--steps", a->steps, "weight versions to push")
        ->check(integerIn(1, limits::kMaxSteps))
        ->capture_default_str();
    cmd->add_option("--seed", a->seed, "seed of the synthetic trainer weights")
        ->check(unsignedInteger())
        ->capture_default_str();
    cmd->add_option(
           "--transport", a->transport,
           "data-plane backend: auto (CUDA-IPC between GPUs of one host, else UCX), ucx, "
           "cuda_ipc, nccl (send/recv pairs, GPU only), filesystem (a safetensors checkpoint "
           "per version under --fs-root)")
        ->check(CLI::IsMember({"auto", "ucx", "cuda_ipc", "nccl", "filesystem"}))
        ->capture_default_str();
    cmd->add_option("--fs-root", a->fs_root,
                    "--transport filesystem: directory of the checkpoints (step_<N>/ each)")
        ->check(nonEmpty());
    cmd->add_option("--fs-keep", a->fs_keep,
                    "--transport filesystem: step directories kept after each commit")
        ->check(integerIn(1, 1 << 20))
        ->capture_default_str();
    cmd->add_option("--fs-file-bytes", a->fs_file_bytes,
                    "--transport filesystem: largest safetensors file (tensor bytes)")
        ->check(integerIn(1, std::numeric_limits<int64_t>::max()))
        ->capture_default_str();
    cmd->add_option("--device", a->device, "where weights and slots live: cpu or cuda")
        ->check(CLI::IsMember({"cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_option("--trainer-gpus", a->trainer_gpus, "GPUs of the trainer ranks (round robin)")
        ->check(integerIn(0, limits::kMaxGpuOrdinal))
        ->capture_default_str();
    cmd->add_option("--inference-gpus", a->inference_gpus,
                    "GPUs of the inference ranks (round robin)")
        ->check(integerIn(0, limits::kMaxGpuOrdinal))
        ->capture_default_str();
    cmd->add_option("--ucx-tls", a->ucx_tls, "UCX transports, e.g. posix,sysv,self or tcp,self");
    cmd->add_option("--transport-options", a->transport_options,
                    "backend options as JSON; with --transport auto keyed by backend, e.g. "
                    "'{\"cuda_ipc\": {\"streams\": 8}}'");
    cmd->add_flag("--json", a->json_out, "end with one JSON line of results");
    cmd->add_flag("--no-verify", a->no_verify, "skip the byte-for-byte check (benchmarking)");
    cmd->add_flag("--staging", a->staging,
                  "inference ranks receive into a staging copy and commit (a failed push leaves "
                  "the live weights untouched)");
    cmd->add_flag("--checksum", a->checksum,
                  "trainers checksum every write and inference ranks check what landed before "
                  "committing (a mismatch fails the version, naming tensor, range and trainer)");
    cmd->add_flag("--flip", a->flip,
                  "zero-pause updates (implies --staging): ranks keep serving while the version "
                  "lands in staging and pause only to make it live: the ranks swap their live "
                  "and staging arenas (O(1))");
    cmd->add_flag("--flip-copy", a->flip_copy,
                  "--flip that copies staging over the live weights instead of swapping (at "
                  "memory bandwidth; what ranks whose addresses are fixed do)");
    cmd->add_flag("--no-pipeline", a->no_pipeline,
                  "convert everything, then write everything (measures each phase alone)");
    cmd->add_option("--timeout", a->timeout_s, "seconds any one phase may take")
        ->check(timeoutSeconds())
        ->capture_default_str();
    cmd->add_option("--log-dir", a->log_dir, "where each process writes its log")
        ->check(directoryPath());
    cmd->add_option("--store", a->store,
                    "run the job on this control store instead of starting a coordinator: "
                    "etcd://host:port[,host:port...][/root] or a coordinator's host:port")
        ->check(storeAddress());
    cmd->add_option("--metrics-port", a->metrics_port,
                    "agents serve Prometheus metrics on 127.0.0.1: agent i on this port + i, or "
                    "each on any free port with 0 (printed as they start); default: off")
        ->check(integerIn(0, 65535));
    cmd->add_option("--job-secret-file", a->job_secret_file,
                    "the job secret (else $WEIGHTSYNC_JOB_SECRET, else a fresh random one): "
                    "every control message and value of the job is authenticated with it")
        ->check(CLI::ExistingFile);
    cmd->add_flag("-v,--verbose", a->verbose, "agents log progress");
    cmd->callback([a] {
        const int rc = runDemo(*a);
        if (rc != 0) std::exit(rc);
    });
}

}  // namespace weightsync::cli
