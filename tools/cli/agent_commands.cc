// `weightsync coordinator`, `weightsync trainer`, `weightsync inference`: the three kinds of
// processes of a job. Each agent reaches the coordinator at --coordinator host:port and works in
// the namespace of --job.

#include "common/error.h"
#include "common/log.h"
#include "control/coordinator.h"
#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "engine/inference_agent.h"
#include "engine/trainer_agent.h"
#include "tools/cli/commands.h"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <memory>

namespace weightsync::cli {

namespace {

std::atomic<bool> g_stop{false};

struct AgentArgs {
    std::string coordinator = "127.0.0.1:29600";
    std::string job = "job";
    int rank = 0;
    int engine = 0;
    engine::InferenceFaults faults;
    bool verbose = false;
};

std::shared_ptr<control::Store> connectStore(const AgentArgs &a) {
    const size_t colon = a.coordinator.rfind(':');
    check(colon != std::string::npos, Errc::kInvalidArgument,
          "--coordinator must be host:port, got '{}'", a.coordinator);
    const std::string host = a.coordinator.substr(0, colon);
    const int port = std::stoi(a.coordinator.substr(colon + 1));
    auto client = std::make_shared<control::TcpStoreClient>(host, port, std::chrono::seconds(30));
    return std::make_shared<control::PrefixStore>(a.job, client);
}

void addCommon(CLI::App *cmd, AgentArgs &a) {
    cmd->add_option("--coordinator", a.coordinator, "coordinator host:port")->capture_default_str();
    cmd->add_option("--job", a.job, "job id (namespace in the coordinator)")->capture_default_str();
    cmd->add_flag("-v,--verbose", a.verbose, "log progress to stderr");
}

}  // namespace

void addAgentCommands(CLI::App &app) {
    {
        auto host = std::make_shared<std::string>("127.0.0.1");
        auto port = std::make_shared<int>(29600);
        auto port_file = std::make_shared<std::string>();
        auto limits = std::make_shared<control::ServerLimits>();
        auto read_timeout_ms = std::make_shared<int64_t>(limits->read_timeout.count());
        auto max_call_ms = std::make_shared<int64_t>(limits->max_call_timeout.count());
        CLI::App *cmd = app.add_subcommand("coordinator", "serve the control-plane store");
        cmd->add_option("--host", *host, "address to bind")->capture_default_str();
        cmd->add_option("--port", *port, "port (0 = any free port)")->capture_default_str();
        cmd->add_option("--port-file", *port_file, "write the bound port to this file");
        cmd->add_option("--max-connections", limits->max_connections,
                        "client connections served at once; more are refused")
            ->capture_default_str();
        cmd->add_option("--max-frame-bytes", limits->max_frame_bytes, "largest request frame")
            ->capture_default_str();
        cmd->add_option("--read-timeout-ms", *read_timeout_ms,
                        "a request frame must arrive whole within this")
            ->capture_default_str();
        cmd->add_option("--max-call-timeout-ms", *max_call_ms,
                        "wait/watch timeouts are clamped to this")
            ->capture_default_str();
        cmd->callback([host, port, port_file, limits, read_timeout_ms, max_call_ms] {
            limits->read_timeout = std::chrono::milliseconds(*read_timeout_ms);
            limits->max_call_timeout = std::chrono::milliseconds(*max_call_ms);
            std::signal(SIGTERM, [](int) { g_stop = true; });
            std::signal(SIGINT, [](int) { g_stop = true; });
            control::runCoordinator(
                *host, *port, g_stop,
                [&](int bound) {
                    if (!port_file->empty()) {
                        const std::string tmp = *port_file + ".tmp";
                        std::ofstream(tmp) << bound << "\n";
                        std::rename(tmp.c_str(), port_file->c_str());
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
        cmd->add_option("--rank", a->rank, "trainer rank")->required();
        cmd->callback([a] {
            if (a->verbose) setLogLevel(spdlog::level::info);
            engine::TrainerAgent agent(connectStore(*a), a->rank);
            agent.init();
            for (int v = 1; v <= agent.spec().steps; ++v) {
                const engine::PushMetrics m = agent.push(static_cast<uint64_t>(v));
                logger("trainer")->info("rank {} version {}: {}", a->rank, v, m.toJson().dump());
            }
        });
    }
    {
        auto a = std::make_shared<AgentArgs>();
        CLI::App *cmd = app.add_subcommand("inference", "run one inference rank of a job");
        addCommon(cmd, *a);
        cmd->add_option("--engine", a->engine, "inference engine index")->required();
        cmd->add_option("--rank", a->rank, "rank inside the engine")->required();
        cmd->add_option("--fault-die-at-version", a->faults.die_at_version,
                        "testing: kill this process in the middle of that version's push");
        cmd->add_option("--fault-model", a->faults.model,
                        "testing: serve this model's layout instead of the job's");
        cmd->add_option("--fault-shrink-tensor", a->faults.shrink_tensor,
                        "testing: publish this tensor's descriptor one byte short");
        cmd->callback([a] {
            if (a->verbose) setLogLevel(spdlog::level::info);
            engine::InferenceAgent agent(connectStore(*a), a->engine, a->rank, a->faults);
            agent.init();
            for (int v = 1; v <= agent.spec().steps; ++v) {
                (void)agent.serveStep(static_cast<uint64_t>(v));
            }
        });
    }
}

}  // namespace weightsync::cli
