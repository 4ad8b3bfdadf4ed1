// Soak: thousands of versions of one job on local processes, sampling every process's resident
// memory and open file descriptors, the coordinator's key count and the update time every
// --sample versions. The cost of a version must stay flat over a long run: the store erases
// finished versions, and no wait lists an unbounded prefix. Prints a table; --json-out writes
// every sample, the growth per 1000 versions (least squares over the samples after the first
// 10 %) and the command that reproduces them.
//
//   build/bench/e2e/bench_soak [--versions 10000] [--sample 100] [--model glm5-tiny]
//                              [--device cpu|cuda] [--json-out FILE]
//
// With --device cuda (trainers on GPU 0, inference ranks on the last GPU), each sample also
// records every process's GPU memory as nvidia-smi reports it.

#include "common/subprocess.h"
#include "engine/local_job.h"
#include "engine/metrics.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <thread>

using namespace weightsync;
namespace keys = engine::protocol::keys;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

/// VmRSS of a process in bytes (0 if it is gone).
int64_t rssBytes(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6)) * 1024;
    }
    return 0;
}

int64_t openFds(pid_t pid) {
    std::error_code ec;
    int64_t n = 0;
    for (auto it = fs::directory_iterator(fmt::format("/proc/{}/fd", pid), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        ++n;
    }
    return n;
}

/// Least-squares slope of y over x.
double slope(const std::vector<double> &x, const std::vector<double> &y) {
    const double n = static_cast<double>(x.size());
    if (n < 2) return 0;
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        num += (x[i] - mx) * (y[i] - my);
        den += (x[i] - mx) * (x[i] - mx);
    }
    return den > 0 ? num / den : 0;
}

/// GPU memory (bytes) of each process with a CUDA context, by pid, from nvidia-smi (empty when
/// it cannot be run).
std::map<pid_t, int64_t> gpuMemoryByPid() {
    std::map<pid_t, int64_t> out;
    const std::unique_ptr<FILE, int (*)(FILE *)> pipe(
        ::popen("nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits "
                "2>/dev/null",
                "r"),
        ::pclose);
    if (!pipe) return out;
    std::array<char, 256> line{};
    while (std::fgets(line.data(), static_cast<int>(line.size()), pipe.get()) != nullptr) {
        std::istringstream in(line.data());
        long pid = 0;
        char comma = 0;
        int64_t mib = 0;
        if (in >> pid >> comma >> mib) out[static_cast<pid_t>(pid)] += mib << 20;
    }
    return out;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"soak: one job for many versions; flat memory, fds, keys and update time"};
    int versions = 10'000;
    int sample = 100;
    std::string model = "glm5-tiny";
    std::string json_out;
    std::string bin = (fs::path(selfExecutable()).parent_path() / "../../weightsync").string();
    app.add_option("--versions", versions, "weight versions to push")
        ->check(CLI::Range(10, 1'000'000))
        ->capture_default_str();
    app.add_option("--sample", sample, "sample every N versions")
        ->check(CLI::Range(1, 100'000))
        ->capture_default_str();
    app.add_option("--model", model, "built-in model or layout file")->capture_default_str();
    std::string device = "cpu";
    app.add_option("--device", device, "where weights and slots live")
        ->check(CLI::IsMember({"cpu", "cuda"}))
        ->capture_default_str();
    int gpus = 2;
    app.add_option("--gpus", gpus, "cuda: trainers on GPU 0, inference ranks on GPU gpus-1")
        ->check(CLI::Range(1, 8))
        ->capture_default_str();
    app.add_option("--json-out", json_out, "write the samples and growth as JSON");
    app.add_option("--bin", bin, "the weightsync tool")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    engine::LocalJobOptions o;
    o.spec.model = model;
    o.spec.mesh = {1, 4, 2};  // the demo's shape: 4 trainer ranks, 2 engines of 2 ranks
    o.spec.fleet.engines = {{2, 1, 2, {}}, {2, 1, 2, {}}};
    o.spec.steps = versions;
    o.spec.launcher_collects = true;  // this program reads each version, then erases it
    if (device == "cuda") {
        o.spec.device = engine::Device::kCuda;
        o.spec.trainer_gpus = {0};
        o.spec.inference_gpus = {gpus - 1};
    } else {
        o.spec.transport_options = {{"transports", "posix,sysv,self"}};
    }
    o.spec.step_timeout = std::chrono::seconds(60);
    o.executable = bin;
    o.job_id = "soak";
    engine::LocalJob job(o);
    job.start();
    const int trainers = o.spec.mesh.ranks();
    auto pids = job.pids();
    pids["launcher"] = ::getpid();

    fmt::print("{:>8} {:>10} {:>12} {:>12} {:>12} {:>8} {:>6}\n", "version", "update ms",
               "coord MiB", "max agent", "launcher", "fds", "keys");
    nlohmann::json samples = nlohmann::json::array();
    std::vector<double> window;  // update seconds since the last sample
    const auto start = Clock::now();
    uint64_t next = 1;
    while (next <= static_cast<uint64_t>(versions)) {
        // The version's trainer metrics, as soon as they are there.
        std::vector<engine::PushMetrics> metrics;
        for (int t = 0; t < trainers; ++t) {
            const std::string key = keys::metrics(next, t);
            const auto raw = job.store().wait(key, std::chrono::seconds(120));
            metrics.push_back(engine::protocol::decode<engine::PushMetrics>(raw, next, key));
        }
        double update = 0;
        for (const auto &m : metrics) update = std::max(update, m.total_seconds);
        window.push_back(update);
        if (next > o.spec.retain_versions) {
            (void)job.store().erasePrefix(keys::versionPrefix(next - o.spec.retain_versions));
        }
        // (Not at the last version: the agents are leaving by then.)
        if (next % static_cast<uint64_t>(sample) == 0 && next < static_cast<uint64_t>(versions)) {
            nlohmann::json s = {{"version", next},
                                {"seconds", engine::secondsSince(start)},
                                {"update_s_median", median(window)},
                                {"keys", job.store().list("").size()}};
            int64_t fds = 0;
            int64_t max_agent = 0;
            for (const auto &[name, pid] : pids) {
                const int64_t rss = rssBytes(pid);
                s["rss_bytes"][name] = rss;
                s["fds"][name] = openFds(pid);
                fds += s["fds"][name].get<int64_t>();
                if (name != "coordinator" && name != "launcher")
                    max_agent = std::max(max_agent, rss);
            }
            if (device == "cuda") {
                const auto gpu = gpuMemoryByPid();
                for (const auto &[name, pid] : pids) {
                    const auto it = gpu.find(pid);
                    s["gpu_bytes"][name] = it != gpu.end() ? it->second : 0;
                }
            }
            s["fds_total"] = fds;
            fmt::print("{:>8} {:>10.2f} {:>12.1f} {:>12.1f} {:>12.1f} {:>8} {:>6}\n", next,
                       median(window) * 1e3, s["rss_bytes"]["coordinator"].get<double>() / 1048576,
                       static_cast<double>(max_agent) / 1048576,
                       s["rss_bytes"]["launcher"].get<double>() / 1048576, fds,
                       s["keys"].get<int64_t>());
            samples.push_back(s);
            window.clear();
        }
        ++next;
    }
    const auto codes = job.wait(std::chrono::seconds(60));
    bool ok = true;
    for (const auto &[name, code] : codes) {
        if (code != 0) {
            fmt::print(stderr, "{} ended with {} (log {})\n", name, code, job.logOf(name));
            ok = false;
        }
    }

    // Growth per 1000 versions over the samples after the first 10 % (start-up settles).
    std::vector<double> x;
    std::map<std::string, std::vector<double>> series;
    for (const auto &s : samples) {
        if (s["version"].get<double>() < 0.1 * versions) continue;
        x.push_back(s["version"].get<double>());
        series["update_s"].push_back(s["update_s_median"].get<double>());
        series["keys"].push_back(s["keys"].get<double>());
        series["fds_total"].push_back(s["fds_total"].get<double>());
        for (const auto &[name, rss] : s["rss_bytes"].items()) {
            series["rss_bytes/" + name].push_back(rss.get<double>());
        }
        if (s.contains("gpu_bytes")) {
            for (const auto &[name, bytes] : s["gpu_bytes"].items()) {
                series["gpu_bytes/" + name].push_back(bytes.get<double>());
            }
        }
    }
    nlohmann::json growth = nlohmann::json::object();
    fmt::print("\ngrowth per 1000 versions (least squares, versions {}..{}):\n",
               x.empty() ? 0 : static_cast<int64_t>(x.front()), versions);
    for (const auto &[name, y] : series) {
        growth[name] = slope(x, y) * 1000;
        fmt::print("  {:<34} {:>+14.3f}\n", name, growth[name].get<double>());
    }
    if (!json_out.empty()) {
        std::string command = "build/bench/e2e/bench_soak";
        for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
        std::ofstream(json_out) << nlohmann::json{{"command", command},
                                                  {"model", model},
                                                  {"device", device},
                                                  {"versions", versions},
                                                  {"sample_every", sample},
                                                  {"ok", ok},
                                                  {"wall_seconds", engine::secondsSince(start)},
                                                  {"growth_per_1000_versions", growth},
                                                  {"samples", samples}}
                                       .dump(1)
                                << "\n";
    }
    return ok ? 0 : 1;
}
