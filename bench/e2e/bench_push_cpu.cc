// CPU end-to-end push benchmark: glm5-medium (a few GB) pushed between real processes over UCX
// shared memory, next to a memcpy of the same bytes measured in the same run. With
// --transport filesystem, the same pushes as checkpoints under each --fs-root (e.g. a local disk
// directory and /dev/shm), next to dd-style sequential writes (+ fsync) of the same number of
// bytes into the same directory (from one cached 8 MiB block, and from a source buffer of that
// size, as the slots are) and a memcpy. Prints a table; --json-out writes the figures and the
// command that reproduces them.
//
//   build/bench/e2e/bench_push_cpu [--steps 3] [--model glm5-medium] [--json-out FILE]
//                                  [--transport filesystem --fs-root DIR [--fs-root DIR2]]
//                                  [--checksum-ab [--rounds 3]]
//
// --checksum-ab runs every configuration in R rounds of two jobs, without and with checksums
// (JobSpec::checksum) in alternating order, and reports the update's overhead: the median of
// the rounds' ratios.

#include "common/subprocess.h"
#include "engine/local_job.h"
#include "engine/metrics.h"
#include "engine/protocol/keys.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
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

/// A dd-style sequential write of `bytes` into a new file in `dir` (8 MiB blocks, then fsync),
/// in GB/s; the file is removed after. `whole_source`: the blocks come from a source buffer of
/// `bytes` bytes (as the slots' bytes do), else one 8 MiB block is written again and again (dd
/// from /dev/zero: the source stays in cache, so on tmpfs only the destination costs memory
/// bandwidth).
double sequentialWriteGbps(const std::string &dir, size_t bytes, bool whole_source) {
    constexpr size_t kBlock = size_t{8} << 20;
    const size_t source_bytes = whole_source ? bytes : kBlock;
    void *mapped = ::mmap(nullptr, source_bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mapped == MAP_FAILED) return 0;
    auto *source = static_cast<std::byte *>(mapped);
    std::memset(source, 0x5a, source_bytes);
    const std::string path = (std::filesystem::path(dir) / "bench-dd.bin").string();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ::munmap(mapped, source_bytes);
        return 0;
    }
    const auto t0 = Clock::now();
    bool ok = true;
    for (size_t done = 0; done < bytes && ok;) {
        const size_t n = std::min(kBlock, bytes - done);
        ok = ::write(fd, source + (whole_source ? done : 0), n) == static_cast<ssize_t>(n);
        done += n;
    }
    ok = ok && ::fsync(fd) == 0;
    const double s = engine::secondsSince(t0);
    ::close(fd);
    ::munmap(mapped, source_bytes);
    std::filesystem::remove(path);
    return ok ? static_cast<double>(bytes) / s / 1e9 : 0;
}

constexpr const char *kUsage =
    "Usage: bench_push_cpu [--steps N] [--model NAME] [--json-out FILE] [--bin WEIGHTSYNC]\n"
    "                      [--transport filesystem --fs-root DIR [--fs-root DIR ...]]\n"
    "  Pushes NAME (default glm5-medium) N times (default 3) between real processes over UCX\n"
    "  shared memory in two topologies, next to a memcpy of the same bytes; prints a table and\n"
    "  writes the figures with the command to FILE. WEIGHTSYNC: the weightsync tool (default\n"
    "  ../../weightsync from this binary). --transport filesystem: the same pushes written as\n"
    "  checkpoints under each DIR (its write phase: the slowest rank's pwrites + fsync, then\n"
    "  rank 0's hashes of shared chunks, renames and manifest), next to a sequential write +\n"
    "  fsync of the same bytes in DIR.\n"
    "  --checksum-ab [--rounds R]: each topology R times (default 3) without and with\n"
    "  checksums, the order alternating, and the overhead (the median of the rounds' ratios).\n";

/// The directory of this run's checkpoints under a --fs-root.
std::string fsDir(const std::string &root) {
    return (std::filesystem::path(root) / fmt::format("bench-{}", ::getpid())).string();
}

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
    std::string transport = "ucx";
    std::vector<std::string> roots;
    bool checksum_ab = false;
    int rounds = 3;
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
            (a != "--model" && a != "--steps" && a != "--json-out" && a != "--bin" &&
             a != "--transport" && a != "--fs-root" && a != "--rounds")) {
            fmt::print(stderr, "bench_push_cpu: unknown option or missing value: '{}'\n{}", a,
                       kUsage);
            return 2;
        }
        const std::string value = argv[++i];
        if (a == "--model") model = value;
        if (a == "--json-out") json_out = value;
        if (a == "--bin") bin = value;
        if (a == "--transport") transport = value;
        if (a == "--fs-root") roots.push_back(value);
        if (a == "--steps" || a == "--rounds") {
            int &n = a == "--steps" ? steps : rounds;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n < 1) {
                fmt::print(stderr, "bench_push_cpu: {} must be an integer >= 1, got '{}'\n", a,
                           value);
                return 2;
            }
        }
    }
    if ((transport != "ucx" && transport != "filesystem") ||
        (transport == "filesystem") != !roots.empty()) {
        fmt::print(stderr,
                   "bench_push_cpu: --transport is ucx or filesystem, and --fs-root goes with "
                   "filesystem (at least one)\n");
        return 2;
    }
    const bool files = transport == "filesystem";
    if (files && checksum_ab) {
        fmt::print(stderr, "bench_push_cpu: --checksum-ab measures the ucx transport\n");
        return 2;
    }
    if (!files) roots = {""};
    const std::vector<Config> configs = {
        {"1 trainer -> 1 inference rank", {1, 1, 1}, {{1, 1, 1, {}}}},
        {"4 trainers (FSDP4,EP2) -> 2 engines x 2 (EP2)",
         {1, 4, 2},
         {{2, 1, 2, {}}, {2, 1, 2, {}}}},
    };
    nlohmann::json rows = nlohmann::json::array();
    if (files) {
        fmt::print("{:<46} {:<16} {:>8} {:>9} {:>10} {:>9} {:>8} {:>10} {:>9} {:>11} {:>9}\n",
                   "config", "root", "ckpt GB", "convert s", "write GB/s", "dd GB/s", "write/dd",
                   "ddmem GB/s", "write/ddm", "memcpy GB/s", "update s");
    } else {
        fmt::print("{:<46} {:>9} {:>10} {:>11} {:>12} {:>10} {:>10}\n", "config", "wire GB",
                   "convert s", "write GB/s", "memcpy GB/s", "write/mcpy", "update s");
    }
    // One job of `steps` versions: per step, bytes summed over ranks and the phase times of
    // the slowest rank. Empty if a process failed (its log is kept and named).
    struct Figures {
        int64_t wire = 0;
        std::vector<double> write_gbps, update_s, convert_s;
        std::vector<double> barrier_s;  // per version: done -> every inference rank resumed
    };
    const auto push = [&](const Config &c, const std::string &root,
                          bool checksum) -> std::optional<Figures> {
        engine::LocalJobOptions o;
        o.spec.checksum = checksum;
        o.spec.model = model;
        o.spec.mesh = c.mesh;
        o.spec.fleet.engines = c.engines;
        o.spec.steps = steps;
        o.spec.verify = false;
        o.spec.launcher_collects = true;  // keep every version's metrics: read after the run
        o.spec.transport_options = {{"transports", "posix,sysv,self"}};
        if (files) {
            o.spec.transport = transport::TransportChoice::kFilesystem;
            o.spec.fs_root = fsDir(root);
            o.spec.fs_keep = 1;
            // Allocating GBs on a busy 2-core machine can starve keep-alives past 1.5 s.
            o.spec.liveness_ttl = std::chrono::seconds(10);
            std::filesystem::create_directories(o.spec.fs_root);
        }
        o.executable = std::filesystem::weakly_canonical(bin).string();
        o.job_id = "bench";
        engine::LocalJob job(o);
        job.start();
        const auto codes = job.supervise(std::chrono::minutes(20));
        for (const auto &[name, code] : codes) {
            if (code != 0) {
                fmt::print(stderr, "{} failed ({}): see {}\n", name, code, job.logOf(name));
                job.keepLogs();
                return std::nullopt;
            }
        }
        Figures f;
        for (int v = 1; v <= steps; ++v) {
            int64_t bytes = 0;
            double write = 0, total = 0, convert = 0, finalize = 0, barrier = 0;
            for (int t = 0; t < c.mesh.ranks(); ++t) {
                const auto m = engine::PushMetrics::fromJson(nlohmann::json::parse(job.store().wait(
                    engine::protocol::keys::metrics(v, t), std::chrono::seconds(5))));
                bytes += m.wire_bytes;
                write = std::max(write, m.post_seconds + m.drain_seconds);
                finalize = std::max(finalize, m.finalize_seconds);
                total = std::max(total, m.total_seconds);
                convert = std::max(convert, m.convert_seconds);
                barrier = std::max(barrier, m.barrier_seconds);
            }
            f.wire = bytes;
            write += finalize;  // after every rank's writes: on the critical path
            f.write_gbps.push_back(static_cast<double>(bytes) / write / 1e9);
            f.update_s.push_back(total);
            f.convert_s.push_back(convert);
            f.barrier_s.push_back(barrier);
        }
        return f;
    };
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    for (const std::string &root : roots) {
        for (const Config &c : configs) {
            if (!checksum_ab) {
                const auto f = push(c, root, false);
                if (!f) return 1;
                const double mcpy = memcpyGbps(static_cast<size_t>(f->wire));
                const double w = median(f->write_gbps);
                if (files) {
                    const std::string dir = fsDir(root);
                    const double dd = sequentialWriteGbps(dir, static_cast<size_t>(f->wire), false);
                    const double dd_mem =
                        sequentialWriteGbps(dir, static_cast<size_t>(f->wire), true);
                    std::filesystem::remove_all(dir);
                    fmt::print(
                        "{:<46} {:<16} {:>8.3f} {:>9.3f} {:>10.2f} {:>9.2f} {:>8.2f} {:>10.2f} "
                        "{:>9.2f} {:>11.2f} {:>9.3f}\n",
                        c.name, root, f->wire / 1e9, median(f->convert_s), w, dd, w / dd, dd_mem,
                        w / dd_mem, mcpy, median(f->update_s));
                    rows.push_back({{"config", c.name},
                                    {"transport", "filesystem"},
                                    {"root", root},
                                    {"checkpoint_bytes_per_step", f->wire},
                                    {"convert_seconds_median", median(f->convert_s)},
                                    {"write_gbps_median", w},
                                    {"sequential_write_gbps", dd},
                                    {"write_over_sequential", w / dd},
                                    {"sequential_write_from_memory_gbps", dd_mem},
                                    {"write_over_sequential_from_memory", w / dd_mem},
                                    {"memcpy_gbps_best", mcpy},
                                    {"update_seconds_median", median(f->update_s)},
                                    {"steps", steps}});
                    continue;
                }
                fmt::print("{:<46} {:>9.3f} {:>10.3f} {:>11.2f} {:>12.2f} {:>10.2f} {:>10.3f}\n",
                           c.name, f->wire / 1e9, median(f->convert_s), w, mcpy, w / mcpy,
                           median(f->update_s));
                rows.push_back({{"config", c.name},
                                {"wire_bytes_per_step", f->wire},
                                {"convert_seconds_median", median(f->convert_s)},
                                {"write_gbps_median", w},
                                {"memcpy_gbps_best", mcpy},
                                {"write_over_memcpy", w / mcpy},
                                {"update_seconds_median", median(f->update_s)},
                                {"steps", steps}});
                continue;
            }
            // A/B: `rounds` pairs of jobs, without and with checksums, the order alternating
            // (off-on, on-off, ...) so that a machine drifting during the run weighs on both
            // arms. Overhead: the median over rounds of the pair's ratio of median updates.
            std::array<Figures, 2> pooled;  // [0] without, [1] with checksums
            std::vector<double> ratios;
            for (int r = 0; r < rounds; ++r) {
                std::array<double, 2> round_update{};
                for (int k = 0; k < 2; ++k) {
                    const bool checksum = (k == 1) != (r % 2 == 1);
                    const auto f = push(c, root, checksum);
                    if (!f) return 1;
                    round_update[checksum ? 1 : 0] = median(f->update_s);
                    Figures &p = pooled[checksum ? 1 : 0];
                    p.wire = f->wire;
                    p.write_gbps.insert(p.write_gbps.end(), f->write_gbps.begin(),
                                        f->write_gbps.end());
                    p.update_s.insert(p.update_s.end(), f->update_s.begin(), f->update_s.end());
                    p.convert_s.insert(p.convert_s.end(), f->convert_s.begin(), f->convert_s.end());
                    p.barrier_s.insert(p.barrier_s.end(), f->barrier_s.begin(), f->barrier_s.end());
                }
                ratios.push_back(round_update[1] / round_update[0]);
            }
            const double mcpy = memcpyGbps(static_cast<size_t>(pooled[0].wire));
            for (int k = 0; k < 2; ++k) {
                const Figures &f = pooled[k];
                const double w = median(f.write_gbps);
                const std::string name = k == 1 ? c.name + " +checksum" : c.name;
                fmt::print("{:<46} {:>9.3f} {:>10.3f} {:>11.2f} {:>12.2f} {:>10.2f} {:>10.3f}\n",
                           name, f.wire / 1e9, median(f.convert_s), w, mcpy, w / mcpy,
                           median(f.update_s));
                nlohmann::json row = {{"config", name},
                                      {"checksum", k == 1},
                                      {"wire_bytes_per_step", f.wire},
                                      {"convert_seconds_median", median(f.convert_s)},
                                      {"write_gbps_median", w},
                                      {"memcpy_gbps_best", mcpy},
                                      {"write_over_memcpy", w / mcpy},
                                      {"update_seconds_median", median(f.update_s)},
                                      {"update_seconds", f.update_s},
                                      {"barrier_seconds_median", median(f.barrier_s)},
                                      {"steps", steps},
                                      {"rounds", rounds}};
                if (k == 1) {
                    const double overhead = median(ratios) - 1;
                    fmt::print("{:<46} {:>+9.1f} %  (per round:", "  checksum overhead (update)",
                               overhead * 100);
                    for (const double x : ratios) fmt::print(" {:+.1f}", (x - 1) * 100);
                    fmt::print(")\n");
                    row["checksum_overhead"] = overhead;
                    std::vector<double> per_round;
                    for (const double x : ratios) per_round.push_back(x - 1);
                    row["checksum_overhead_per_round"] = per_round;
                }
                rows.push_back(std::move(row));
            }
        }
    }
    if (!json_out.empty()) {
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
        std::ofstream(json_out) << nlohmann::json{{"benchmark", "push_cpu"},
                                                  {"model", model},
                                                  {"transport", transport},
                                                  {"command", cmd},
                                                  {"rows", rows}}
                                       .dump(2)
                                << "\n";
    }
    return 0;
}
