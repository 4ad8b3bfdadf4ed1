// Zero-pause updates on the CPU (issue 18): the pause a generation loop sees, against the wire
// time of the same version, with staging only and with --flip. One trainer rank and one
// inference rank on threads of this process (UCX shared memory, a TCP coordinator); the
// inference rank's stand-in generation loop (sim::ReadLoop, one step per --period-us) reads the
// live weights continuously; its longest gap between two steps during a version is the pause
// (last step on N-1 to first on N). Prints a table; --json-out writes it with the command.
//
//   build/bench/e2e/bench_flip_cpu [--model glm5-medium] [--steps 3] [--checksum]
//                                  [--json-out FILE]

#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "engine/inference_agent.h"
#include "engine/protocol/keys.h"
#include "engine/trainer_agent.h"
#include "sim/read_loop.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

using namespace weightsync;
using namespace std::chrono_literals;

namespace {

struct Row {
    std::string mode;
    double wire = 0, gap = 0, apply = 0, update = 0;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

Row run(const std::string &model, int steps, bool flip, bool checksum, int period_us) {
    control::TcpStoreServer server;
    const auto client = [&] {
        return std::make_shared<control::PrefixStore>(
            "job", std::make_shared<control::TcpStoreClient>(server.host(), server.port(), 10s));
    };
    engine::JobSpec spec;
    spec.model = model;
    spec.mesh = {1, 1, 1};
    spec.fleet.engines = {{1, 1, 1, {}}};
    spec.steps = steps + 1;
    spec.transport_options = {{"transports", "posix,sysv,self"}};
    spec.verify = false;
    spec.staging = true;
    spec.flip = flip;
    spec.checksum = checksum;
    spec.launcher_collects = true;
    client()->set(engine::protocol::keys::spec(), spec.toJson().dump());

    std::atomic<uint64_t> measured{0};
    std::vector<double> gaps(static_cast<size_t>(steps) + 2), applies(gaps.size());
    std::string failure;
    std::thread receiver([&] {
        try {
            engine::InferenceOptions o;
            o.readers = [&](const engine::LocalWeights &live) {
                std::vector<std::pair<const std::byte *, size_t>> tensors;
                for (size_t i = 0; i < live.tensors.size(); ++i) {
                    tensors.emplace_back(live.data[i], static_cast<size_t>(live.tensors[i].bytes));
                }
                return std::make_unique<sim::ReadLoop>(std::move(tensors),
                                                       std::chrono::microseconds(period_us));
            };
            engine::InferenceAgent agent(client(), 0, 0, std::move(o));
            agent.init();
            for (uint64_t v = 1; v <= static_cast<uint64_t>(steps) + 1; ++v) {
                const engine::StepResult r = agent.serveStep(v);
                gaps[v] = r.probe_gap_seconds;  // taken by the agent at resume
                applies[v] = r.hook_seconds;
                measured.store(v);
            }
            agent.leave();
        } catch (const std::exception &e) {
            failure = e.what();
            measured.store(UINT64_MAX);
        }
    });
    Row row;
    row.mode = std::string(flip ? "flip" : "staging") + (checksum ? " +checksum" : "");
    std::vector<double> wire, gap, apply, update;
    try {
        engine::TrainerAgent trainer(client(), 0);
        trainer.init();
        for (uint64_t v = 1; v <= static_cast<uint64_t>(steps) + 1; ++v) {
            const engine::PushMetrics m = trainer.push(v);
            while (measured.load() < v) std::this_thread::sleep_for(1ms);
            if (v == 1) continue;  // warm-up
            wire.push_back(m.post_seconds + m.drain_seconds);
            update.push_back(m.total_seconds);
            gap.push_back(gaps[v]);
            apply.push_back(applies[v]);
        }
        trainer.leave();
    } catch (const std::exception &e) {
        failure = e.what();
    }
    receiver.join();
    if (!failure.empty()) throw std::runtime_error(failure);
    row.wire = median(wire);
    row.gap = median(gap);
    row.apply = median(apply);
    row.update = median(update);
    return row;
}

}  // namespace

int main(int argc, char **argv) {
    std::string model = "glm5-medium";
    int steps = 3;
    int period_us = 1000;
    bool checksum = false;
    std::string json_out;
    CLI::App app{"Pause seen by a generation loop during an update, staging vs flip"};
    app.add_option("--model", model, "model")->capture_default_str();
    app.add_option("--steps", steps, "measured versions per mode")->check(CLI::Range(1, 1000));
    app.add_option("--period-us", period_us, "generation step period")
        ->check(CLI::Range(10, 100000));
    app.add_flag("--checksum", checksum, "checksums on in both modes");
    app.add_option("--json-out", json_out, "write the table and the command here");
    CLI11_PARSE(app, argc, argv);
    nlohmann::json rows = nlohmann::json::array();
    fmt::print("{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "mode", "wire s", "gap s", "gap/wire",
               "apply s", "update s");
    try {
        for (bool flip : {false, true}) {
            const Row r = run(model, steps, flip, checksum, period_us);
            fmt::print("{:<20} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f}\n", r.mode, r.wire,
                       r.gap, r.gap / r.wire, r.apply, r.update);
            rows.push_back({{"mode", r.mode},
                            {"wire_seconds_median", r.wire},
                            {"generation_gap_seconds_median", r.gap},
                            {"gap_over_wire", r.gap / r.wire},
                            {"apply_seconds_median", r.apply},
                            {"update_seconds_median", r.update}});
        }
    } catch (const std::exception &e) {
        fmt::print(stderr, "bench_flip_cpu: {}\n", e.what());
        return 1;
    }
    if (!json_out.empty()) {
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
        std::ofstream(json_out)
            << nlohmann::json{{"benchmark", "flip_cpu"}, {"model", model}, {"steps", steps},
                              {"period_us", period_us},  {"command", cmd}, {"rows", rows}}
                   .dump(2)
            << "\n";
    }
    return 0;
}
