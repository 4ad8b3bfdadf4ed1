// CPU end-to-end push benchmark: glm5-medium (a few GB) pushed between real processes over UCX
// shared memory, next to a memcpy of the same bytes measured in the same run. Prints a table;
// --json-out writes the figures and the command that reproduces them.
//
//   build/bench/e2e/bench_push_cpu [--steps 3] [--model glm5-medium] [--checksum-ab]
//                                  [--json-out FILE]
//
// --checksum-ab runs every configuration twice in the same run, without and with checksums
// (JobSpec::checksum), and reports the update's overhead.

#include "common/subprocess.h"
#include "engine/local_job.h"
#include "engine/metrics.h"
#include "engine/protocol/keys.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sys/mman.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

using namespace weightsync;
using Clock = std::chrono::steady_clock;

namespace {

double memcpyGbps(size_t bytes) {
    const auto map = [&] {
        void *p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        return static_cast<std::byte *>(p);
    };
    std::byte *src = map();
    std::byte *dst = map();
    std::memset(src, 1, bytes);
    std::memset(dst, 0, bytes);
    double best = 0;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        std::memcpy(dst, src, bytes);
        const double s = engine::secondsSince(t0);
        best = std::max(best, static_cast<double>(bytes) / s / 1e9);
    }
    ::munmap(src, bytes);
    ::munmap(dst, bytes);
    return best;
}

constexpr const char *kUsage =
    "Usage: bench_push_cpu [--steps N] [--model NAME] [--checksum-ab] [--json-out FILE]\n"
    "                      [--bin WEIGHTSYNC]\n"
    "  Pushes NAME (default glm5-medium) N times (default 3) between real processes over UCX\n"
    "  shared memory in two topologies, next to a memcpy of the same bytes; prints a table and\n"
    "  writes the figures with the command to FILE. WEIGHTSYNC: the weightsync tool (default\n"
    "  ../../weightsync from this binary). --checksum-ab: each topology without, then with\n"
    "  checksums, and the overhead.\n";

struct Config {
    std::string name;
    planner::TrainerMesh mesh;
    std::vector<planner::EngineSpec> engines;
};

}  // namespace

int main(int argc, char **argv) {
    std::string model = "glm5-medium";
    std::string json_out;
    std::string bin =
        (std::filesystem::path(selfExecutable()).parent_path() / "../../weightsync").string();
    int steps = 3;
    bool checksum_ab = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            fmt::print("{}", kUsage);
            return 0;
        }
        if (a == "--checksum-ab") {
            checksum_ab = true;
            continue;
        }
        if (i + 1 >= argc ||
            (a != "--model" && a != "--steps" && a != "--json-out" && a != "--bin")) {
            fmt::print(stderr, "bench_push_cpu: unknown option or missing value: '{}'\n{}", a,
                       kUsage);
            return 2;
        }
        const std::string value = argv[++i];
        if (a == "--model") model = value;
        if (a == "--json-out") json_out = value;
        if (a == "--bin") bin = value;
        if (a == "--steps") {
            const auto [end, ec] =
                std::from_chars(value.data(), value.data() + value.size(), steps);
            if (ec != std::errc() || end != value.data() + value.size() || steps < 1) {
                fmt::print(stderr, "bench_push_cpu: --steps must be an integer >= 1, got '{}'\n",
                           value);
                return 2;
            }
        }
    }
    const std::vector<Config> configs = {
        {"1 trainer -> 1 inference rank", {1, 1, 1}, {{1, 1, 1, {}}}},
        {"4 trainers (FSDP4,EP2) -> 2 engines x 2 (EP2)",
         {1, 4, 2},
         {{2, 1, 2, {}}, {2, 1, 2, {}}}},
    };
    nlohmann::json rows = nlohmann::json::array();
    fmt::print("{:<46} {:>9} {:>10} {:>11} {:>12} {:>10} {:>10}\n", "config", "wire GB",
               "convert s", "write GB/s", "memcpy GB/s", "write/mcpy", "update s");
    std::vector<std::pair<Config, bool>> runs;
    for (const Config &c : configs) {
        runs.emplace_back(c, false);
        if (checksum_ab) runs.emplace_back(c, true);
    }
    double update_without = 0;
    for (const auto &[c, checksum] : runs) {
        engine::LocalJobOptions o;
        o.spec.checksum = checksum;
        o.spec.model = model;
        o.spec.mesh = c.mesh;
        o.spec.fleet.engines = c.engines;
        o.spec.steps = steps;
        o.spec.verify = false;
        o.spec.launcher_collects = true;  // keep every version's metrics: read after the run
        o.spec.transport_options = {{"transports", "posix,sysv,self"}};
        o.executable = std::filesystem::weakly_canonical(bin).string();
        o.job_id = "bench";
        engine::LocalJob job(o);
        job.start();
        const auto codes = job.supervise(std::chrono::minutes(20));
        for (const auto &[name, code] : codes) {
            if (code != 0) {
                fmt::print(stderr, "{} failed ({}): see {}\n", name, code, job.logOf(name));
                return 1;
            }
        }
        // Per step: bytes summed over ranks, phase times of the slowest rank.
        std::vector<double> write_gbps, update_s, convert_s;
        int64_t wire = 0;
        for (int v = 1; v <= steps; ++v) {
            int64_t bytes = 0;
            double write = 0, total = 0, convert = 0;
            for (int t = 0; t < c.mesh.ranks(); ++t) {
                const auto m = engine::PushMetrics::fromJson(nlohmann::json::parse(job.store().wait(
                    engine::protocol::keys::metrics(v, t), std::chrono::seconds(5))));
                bytes += m.wire_bytes;
                write = std::max(write, m.post_seconds + m.drain_seconds);
                total = std::max(total, m.total_seconds);
                convert = std::max(convert, m.convert_seconds);
            }
            wire = bytes;
            write_gbps.push_back(static_cast<double>(bytes) / write / 1e9);
            update_s.push_back(total);
            convert_s.push_back(convert);
        }
        const auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        const double mcpy = memcpyGbps(static_cast<size_t>(wire));
        const double w = median(write_gbps);
        const std::string name = checksum ? c.name + " +checksum" : c.name;
        fmt::print("{:<46} {:>9.3f} {:>10.3f} {:>11.2f} {:>12.2f} {:>10.2f} {:>10.3f}\n", name,
                   wire / 1e9, median(convert_s), w, mcpy, w / mcpy, median(update_s));
        double overhead = 0;
        if (!checksum) update_without = median(update_s);
        if (checksum && update_without > 0) {
            overhead = median(update_s) / update_without - 1;
            fmt::print("{:<46} {:>+9.1f} %\n", "  checksum overhead (update)", overhead * 100);
        }
        rows.push_back({{"config", name},
                        {"checksum", checksum},
                        {"checksum_overhead", overhead},
                        {"wire_bytes_per_step", wire},
                        {"convert_seconds_median", median(convert_s)},
                        {"write_gbps_median", w},
                        {"memcpy_gbps_best", mcpy},
                        {"write_over_memcpy", w / mcpy},
                        {"update_seconds_median", median(update_s)},
                        {"steps", steps}});
    }
    if (!json_out.empty()) {
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
        std::ofstream(json_out) << nlohmann::json{{"benchmark", "push_cpu"},
                                                  {"model", model},
                                                  {"command", cmd},
                                                  {"rows", rows}}
                                       .dump(2)
                                << "\n";
    }
    return 0;
}
