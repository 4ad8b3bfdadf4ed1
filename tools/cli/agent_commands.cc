// `weightsync coordinator`, `weightsync trainer`, `weightsync inference`: the three kinds of
// processes of a job. Each agent reaches the coordinator at --coordinator host:port and works in
// the namespace of --job.

#include "common/error.h"
#include "common/log.h"
#include "control/connect.h"
#include "control/coordinator.h"
#include "engine/agent_metrics.h"
#include "engine/inference_agent.h"
#include "engine/protocol/keys.h"
#include "engine/trainer_agent.h"
#include "layout/limits.h"
#include "sim/faults.h"
#include "sim/init_faults.h"
#include "sim/read_loop.h"
#include "sim/synthetic_check.h"
#include "tools/cli/commands.h"
#include "tools/cli/validators.h"

#include <fmt/format.h>

#include <sys/prctl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <fstream>
#include <memory>

namespace weightsync::cli {

namespace {

std::atomic<bool> g_stop{false};

struct AgentArgs {
    std::string coordinator = "127.0.0.1:29600";
    std::string store;  // --store: overrides --coordinator (e.g. etcd://host:2379)
    std::string job = "job";
    int rank = 0;
    int engine = 0;
    bool verbose = false;
    int parent_pid = 0;
    std::vector<std::string> fault_specs;  // testing: sim::Fault specs
    uint64_t die_at_version = 0;           // testing: = --fault paused@<version>:kill
    sim::InitFaults init_faults;           // testing: misreport at start-up
    bool keep_going = false;               // a failed version is logged; the next one follows
    int metrics_port = -1;                 // --metrics-port (-1: off)
    std::string job_secret_file;           // else $WEIGHTSYNC_JOB_SECRET, else none
    std::string metrics_host = "0.0.0.0";
};

/// Runs one version; with --keep-going a failed version is logged and the job goes on, as long
/// as the coordinator still answers.
template <typename Step>
void runVersion(const AgentArgs &a, control::Store &store, const char *who, uint64_t version,
                const Step &step) {
    try {
        step();
    } catch (const Error &e) {
        if (!a.keep_going) throw;
        try {
            (void)store.get(engine::protocol::keys::spec());
        } catch (const Error &) {
            throw e;  // the coordinator is gone: nothing can go on
        }
        logger(who)->error("version {} failed; going on: {}", version, e.what());
    }
}

/// The protocol-point observer that injects --fault (nullptr without faults).
std::function<void(engine::protocol::Point, uint64_t)> faultObserver(
    const AgentArgs &a, const std::shared_ptr<control::Store> &store, const std::string &who) {
    std::vector<sim::Fault> faults;
    for (const std::string &f : a.fault_specs) faults.push_back(sim::Fault::parse(f));
    if (a.die_at_version > 0) {
        faults.push_back(
            {engine::protocol::Point::kPaused, a.die_at_version, sim::Fault::Action::kKill, 0});
    }
    if (faults.empty()) return nullptr;
    return sim::FaultInjector(store, who, std::move(faults));
}

/// --parent-pid: this process ends with `signal` when its launcher ends (also when the
/// launcher is already gone by the time we get here).
void exitWithParent(int parent_pid, int signal) {
    if (parent_pid <= 0) return;
    check(::prctl(PR_SET_PDEATHSIG, signal) == 0, Errc::kIo, "prctl(PR_SET_PDEATHSIG) failed");
    if (::getppid() != parent_pid) {
        std::fprintf(stderr, "weightsync: the launcher (pid %d) is gone; exiting\n", parent_pid);
        std::_Exit(3);
    }
}

std::shared_ptr<control::Store> connectStore(const AgentArgs &a) {
    const std::string &address = a.store.empty() ? a.coordinator : a.store;
    return control::openJobStore(address, a.job, std::chrono::seconds(30),
                                 jobSecret(a.job_secret_file));
}

/// --metrics-port: the agent's counters, served at /metrics while it runs (nullptr when off).
/// The bound address is published under metricsKey(who) in the job's namespace.
struct MetricsEndpoint {
    std::shared_ptr<engine::AgentMetrics> metrics;
    std::unique_ptr<engine::MetricsServer> server;
};
MetricsEndpoint serveMetrics(const AgentArgs &a, control::Store &store, const std::string &role,
                             const std::string &who) {
    MetricsEndpoint out;
    if (a.metrics_port < 0) return out;
    out.metrics = std::make_shared<engine::AgentMetrics>(role, who);
    out.server =
        std::make_unique<engine::MetricsServer>(out.metrics, a.metrics_host, a.metrics_port);
    std::string host = a.metrics_host;
    if (host == "0.0.0.0") {
        std::array<char, 256> name{};
        host = ::gethostname(name.data(), name.size() - 1) == 0 ? name.data() : "127.0.0.1";
    }
    const std::string address = fmt::format("{}:{}", host, out.server->port());
    store.set(engine::metricsKey(who), address);
    logger(role)->info("{}: metrics at http://{}/metrics", who, address);
    return out;
}

void addCommon(CLI::App *cmd, AgentArgs &a) {
    cmd->add_option("--coordinator", a.coordinator, "coordinator host:port")
        ->check(hostPort())
        ->capture_default_str();
    cmd->add_option("--store", a.store,
                    "the job's control store instead of --coordinator: host:port of a "
                    "coordinator, or etcd://host:port[,host:port...][/root]")
        ->check(storeAddress());
    cmd->add_option("--job", a.job, "job id (namespace in the coordinator)")
        ->check(nonEmpty())
        ->capture_default_str();
    cmd->add_flag("-v,--verbose", a.verbose, "log progress to stderr");
    cmd->add_option("--parent-pid", a.parent_pid,
                    "end this process when the process of this pid (its launcher) ends")
        ->check(integerIn(1, 1 << 30));
    cmd->add_flag("--keep-going", a.keep_going,
                  "after a failed version, go on with the next one (default: stop)");
    cmd->add_option("--job-secret-file", a.job_secret_file,
                    "the job secret (else $WEIGHTSYNC_JOB_SECRET): every control message and "
                    "value of the job is authenticated with it (docs/security.md)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--metrics-port", a.metrics_port,
                    "serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port; "
                    "default: off)")
        ->check(integerIn(0, 65535));
    cmd->add_option("--metrics-host", a.metrics_host, "address the metrics server binds")
        ->check(nonEmpty())
        ->capture_default_str();
    cmd->add_option("--fault", a.fault_specs,
                    "testing: <point>@<version>:<kill|stop|stall=S|error>, e.g. landed@2:stop");
}

}  // namespace

void addAgentCommands(CLI::App &app) {
    {
        auto host = std::make_shared<std::string>("127.0.0.1");
        auto port = std::make_shared<int>(29600);
        auto port_file = std::make_shared<std::string>();
        auto parent_pid = std::make_shared<int>(0);
        auto limits = std::make_shared<control::ServerLimits>();
        auto read_timeout_ms = std::make_shared<int64_t>(limits->read_timeout.count());
        auto max_call_ms = std::make_shared<int64_t>(limits->max_call_timeout.count());
        auto secret_file = std::make_shared<std::string>();
        CLI::App *cmd = app.add_subcommand("coordinator", "serve the control-plane store");
        cmd->add_option("--host", *host, "address to bind")
            ->check(nonEmpty())
            ->capture_default_str();
        cmd->add_option("--port", *port, "port (0 = any free port)")
            ->check(integerIn(0, 65535))
            ->capture_default_str();
        cmd->add_option("--port-file", *port_file, "write the bound port to this file")
            ->check(inExistingDirectory());
        cmd->add_option("--parent-pid", *parent_pid,
                        "stop serving when the process of this pid (its launcher) ends")
            ->check(integerIn(1, 1 << 30));
        cmd->add_option("--max-connections", limits->max_connections,
                        "client connections served at once; more are refused")
            ->check(integerIn(1, 1 << 20))
            ->capture_default_str();
        cmd->add_option("--max-frame-bytes", limits->max_frame_bytes, "largest request frame")
            ->check(integerIn(1024, static_cast<int64_t>(UINT32_MAX)))
            ->capture_default_str();
        cmd->add_option("--read-timeout-ms", *read_timeout_ms,
                        "a request frame must arrive whole within this")
            ->check(integerIn(1, int64_t{7} * 24 * 3600 * 1000))
            ->capture_default_str();
        cmd->add_option("--max-call-timeout-ms", *max_call_ms,
                        "wait/watch timeouts are clamped to this")
            ->check(integerIn(1, int64_t{7} * 24 * 3600 * 1000))
            ->capture_default_str();
        cmd->add_option("--job-secret-file", *secret_file,
                        "serve an authenticated job: refuse every request without the MAC of "
                        "this secret (else $WEIGHTSYNC_JOB_SECRET; default: none)")
            ->check(CLI::ExistingFile);
        cmd->callback(
            [host, port, port_file, parent_pid, limits, read_timeout_ms, max_call_ms, secret_file] {
                limits->job_secret = jobSecret(*secret_file);
                limits->read_timeout = std::chrono::milliseconds(*read_timeout_ms);
                limits->max_call_timeout = std::chrono::milliseconds(*max_call_ms);
                std::signal(SIGTERM, [](int) { g_stop = true; });
                std::signal(SIGINT, [](int) { g_stop = true; });
                exitWithParent(*parent_pid, SIGTERM);
                control::runCoordinator(
                    *host, *port, g_stop,
                    [&](int bound) {
                        if (!port_file->empty()) {
                            const std::string tmp = *port_file + ".tmp";
                            std::ofstream out(tmp);
                            out << bound << "\n";
                            out.close();
                            check(out.good() && std::rename(tmp.c_str(), port_file->c_str()) == 0,
                                  Errc::kIo, "--port-file: cannot write '{}'", *port_file);
                        }
                        fmt::print(stderr, "coordinator listening on {}:{}\n", *host, bound);
                    },
                    *limits);
            });
    }
    {
        auto a = std::make_shared<AgentArgs>();
        CLI::App *cmd = app.add_subcommand("trainer", "run one trainer rank of a job");
        addCommon(cmd, *a);
        cmd->add_option("--rank", a->rank, "trainer rank")
            ->check(integerIn(0, limits::kMaxTrainerRanks - 1))
            ->required();
        cmd->callback([a] {
            exitWithParent(a->parent_pid, SIGKILL);
            if (a->verbose) setLogLevel(spdlog::level::info);
            const auto store = connectStore(*a);
            engine::TrainerAgent agent(store, a->rank);
            const std::string who = engine::protocol::trainerName(a->rank);
            const auto metrics = serveMetrics(*a, *store, "trainer", who);
            agent.useMetrics(metrics.metrics);
            agent.observePoints(faultObserver(*a, store, who));
            agent.init();
            for (uint64_t v = 1; v <= static_cast<uint64_t>(agent.spec().steps); ++v) {
                runVersion(*a, *store, "trainer", v, [&] {
                    const engine::PushMetrics m = agent.push(v);
                    logger("trainer")->info("rank {} version {}: {}", a->rank, v,
                                            m.toJson().dump());
                });
            }
            agent.leave();
        });
    }
    {
        auto a = std::make_shared<AgentArgs>();
        CLI::App *cmd = app.add_subcommand("inference", "run one inference rank of a job");
        addCommon(cmd, *a);
        cmd->add_option("--engine", a->engine, "inference engine index")
            ->check(integerIn(0, limits::kMaxInferenceRanks - 1))
            ->required();
        cmd->add_option("--rank", a->rank, "rank inside the engine")
            ->check(integerIn(0, limits::kMaxInferenceRanks - 1))
            ->required();
        cmd->add_option("--fault-die-at-version", a->die_at_version,
                        "testing: kill this process in the middle of that version's push (the "
                        "same as --fault paused@<version>:kill)")
            ->check(integerIn(0, limits::kMaxSteps));
        cmd->add_option("--fault-model", a->init_faults.model,
                        "testing: serve this model's layout instead of the job's");
        cmd->add_option("--fault-shrink-tensor", a->init_faults.shrink_tensor,
                        "testing: publish this tensor's descriptor one byte short");
        cmd->callback([a] {
            exitWithParent(a->parent_pid, SIGKILL);
            if (a->verbose) setLogLevel(spdlog::level::info);
            const auto store = connectStore(*a);
            // The synthetic weights of `weightsync trainer`: a stand-in reader while serving, and
            // every byte checked after every version when the job verifies.
            engine::InferenceOptions options;
            options.readers = sim::readLoopFor;
            options.check = std::make_shared<sim::SyntheticCheck>();
            engine::InferenceAgent agent(sim::misreportingStore(store, a->init_faults), a->engine,
                                         a->rank, std::move(options));
            const std::string who =
                engine::protocol::inferenceName(fmt::format("e{}r{}", a->engine, a->rank));
            const auto metrics = serveMetrics(*a, *store, "inference", who);
            agent.useMetrics(metrics.metrics);
            agent.observePoints(faultObserver(*a, store, who));
            agent.init();
            // A rank restarted into a running job (--keep-going) takes part from the version in
            // flight when it joined.
            for (uint64_t v = agent.nextVersion(); v <= static_cast<uint64_t>(agent.spec().steps);
                 v = agent.nextVersion()) {
                runVersion(*a, *store, "inference", v, [&] { (void)agent.serveStep(v); });
            }
            agent.leave();
        });
    }
}

}  // namespace weightsync::cli
