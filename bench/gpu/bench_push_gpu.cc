// GPU -> GPU push throughput on the same bytes, in one run:
//   1. cudaMemcpyPeerAsync GPU0 -> GPU1 inside one process (the baseline);
//   2. a two-process CUDA IPC push through CudaIpcBackend: this process writes from GPU0 into a
//      receiver child's cudaMalloc buffer on GPU1 (the child is spawned with posix_spawn before
//      this process makes any CUDA call).
// Both write `--total` bytes in `--piece` pieces dealt over `--streams` streams and are timed on
// the host clock, post to completion, after one warm-up pass; both are verified by hashing the
// destination. With one GPU both paths copy GPU0 -> GPU0, and the output says so.
//
//   bench_push_gpu --total 8589934592 --piece 67108864 --passes 5 --json-out push_gpu.json

#include "layout/registry.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#include "support/peer_process.h"
#include "transport/cuda_ipc/cuda_ipc_backend.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <xxhash.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

namespace weightsync::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using ChildProcess = weightsync::testing::PeerProcess;
constexpr auto kReply = std::chrono::minutes(5);

struct Options {
    size_t total = size_t{8} << 30;
    size_t piece = size_t{64} << 20;
    int passes = 5;
    int streams = 4;
    size_t chunk = size_t{64} << 20;
    int src_device = 0;
    int dst_device = -1;  // -1: 1 with two GPUs or more, else 0
    std::string json_out;
    std::string role = "sender";
    std::string plan;       // "MODEL:LAYERS": post the writes of that plan (1 trainer -> 1 rank)
    size_t skip_below = 0;  // with --plan: leave out writes smaller than this
    size_t ballast = 0;     // bytes allocated (and filled) on each side after its buffer
};

/// Device memory that only takes room, as the engine's weights and references do beside the
/// buffers that are written.
std::vector<platform::DeviceBuffer> allocateBallast(size_t bytes, int device) {
    std::vector<platform::DeviceBuffer> ballast;
    constexpr size_t kPiece = size_t{4} << 30;
    for (size_t at = 0; at < bytes; at += kPiece) {
        ballast.emplace_back(std::min(kPiece, bytes - at), device);
        ballast.back().fill(1);
    }
    return ballast;
}

/// (source offset, destination offset, bytes) of every write of one pass.
struct Piece {
    size_t src, dst, bytes;
};

/// The pass: uniform pieces, or the writes of a real plan (GLM-5's 1 trainer rank -> 1
/// inference rank, destination tensors laid out one after the other), with o.total set to the
/// buffer size they need.
std::vector<Piece> passPieces(Options &o) {
    std::vector<Piece> pieces;
    if (o.plan.empty()) {
        for (size_t at = 0; at < o.total; at += o.piece) {
            pieces.push_back({at, at, std::min(o.piece, o.total - at)});
        }
        return pieces;
    }
    const size_t colon = o.plan.find(':');
    const layout::Layout layout = layout::resolveLayout(
        o.plan.substr(0, colon),
        colon == std::string::npos ? std::nullopt
                                   : std::optional<int64_t>(std::stoll(o.plan.substr(colon + 1))));
    planner::Fleet fleet;
    fleet.engines = {planner::EngineSpec{1, 1, 1, {}}};
    const planner::Plan plan = planner::buildPlan(layout, planner::TrainerMesh{1, 1, 1}, fleet);
    std::vector<size_t> base;
    size_t end = 0;
    for (const planner::LocalTensor &t : planner::localTensors(layout, plan.peers[0])) {
        base.push_back(end);
        end += (static_cast<size_t>(t.bytes) + 255) / 256 * 256;
    }
    for (const planner::Write &w : plan.ranks[0].writes) {
        if (static_cast<size_t>(w.bytes) < o.skip_below) continue;
        pieces.push_back({static_cast<size_t>(w.src_offset),
                          base[w.dest] + static_cast<size_t>(w.dest_offset),
                          static_cast<size_t>(w.bytes)});
    }
    o.total = std::max(end, static_cast<size_t>(plan.ranks[0].arena_bytes));
    return pieces;
}

size_t passBytes(const std::vector<Piece> &pieces) {
    size_t bytes = 0;
    for (const Piece &p : pieces) bytes += p.bytes;
    return bytes;
}

struct Result {
    std::string name;
    std::vector<double> passes;  // GB/s
    bool verified = false;
    [[nodiscard]] double best() const { return *std::max_element(passes.begin(), passes.end()); }
    [[nodiscard]] double average() const {
        return std::accumulate(passes.begin(), passes.end(), 0.0) /
               static_cast<double>(passes.size());
    }
};

double gbps(size_t bytes, Clock::duration elapsed) {
    return static_cast<double>(bytes) / std::chrono::duration<double>(elapsed).count() / 1e9;
}

/// XXH3 of device memory, staged through the host 64 MiB at a time.
uint64_t hashDevice(const void *data, size_t bytes) {
    constexpr size_t kStage = size_t{64} << 20;
    std::vector<uint8_t> stage(std::min(kStage, bytes));
    XXH3_state_t *state = XXH3_createState();
    XXH3_64bits_reset(state);
    for (size_t at = 0; at < bytes; at += kStage) {
        const size_t n = std::min(kStage, bytes - at);
        platform::cudaCheck(cudaMemcpy(stage.data(), static_cast<const uint8_t *>(data) + at, n,
                                       cudaMemcpyDeviceToHost),
                            "hashing device memory");
        XXH3_64bits_update(state, stage.data(), n);
    }
    const uint64_t hash = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return hash;
}

/// A random piece repeated, each copy stamped with its index (a misplaced piece changes the hash).
void fillSource(const platform::DeviceBuffer &source, size_t piece) {
    std::vector<uint8_t> pattern(std::min(piece, source.size()));
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < pattern.size(); i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(pattern.data() + i, &x, std::min<size_t>(8, pattern.size() - i));
    }
    for (size_t at = 0, index = 0; at < source.size(); at += piece, ++index) {
        const size_t n = std::min(pattern.size(), source.size() - at);
        auto *to = source.as<uint8_t>() + at;
        platform::cudaCheck(cudaMemcpy(to, pattern.data(), n, cudaMemcpyHostToDevice), "filling");
        platform::cudaCheck(
            cudaMemcpy(to, &index, std::min(n, sizeof index), cudaMemcpyHostToDevice), "filling");
    }
}

// ---- receiver role --------------------------------------------------------------------------

int runReceiver(const Options &o) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int count = platform::deviceCount();
    if (count == 0) {
        std::cout << json{{"skip", "no CUDA device"}}.dump() << std::endl;
        return 0;
    }
    const int device = o.dst_device >= 0 ? o.dst_device : (count >= 2 ? 1 : 0);
    check(device < count, Errc::kInvalidArgument, "receiver device {} of {}", device, count);
    platform::DeviceBuffer buffer(o.total, device);
    const auto ballast = allocateBallast(o.ballast, device);
    buffer.fill(0);
    transport::CudaIpcOptions options;
    options.device = device;
    auto backend = transport::makeCudaIpcBackend(options);
    auto region =
        backend->registerMemory(buffer.data(), o.total, transport::MemoryKind::kCuda, device);
    std::cout << json{{"address", backend->address()},
                      {"region", region->describe().toJson()},
                      {"device", device}}
                     .dump()
              << std::endl;
    std::string command;
    while (std::getline(std::cin, command) && command != "exit") {
        if (command == "hash") {
            std::cout << json{{"hash", hashDevice(buffer.data(), o.total)}}.dump() << std::endl;
        }
    }
    return 0;
}

// ---- sender role ----------------------------------------------------------------------------

template <typename Pass>
Result measure(const std::string &name, const Options &o, size_t bytes, Pass &&pass) {
    Result r{name};
    pass();  // warm-up: first-touch mappings, peer access, stream creation
    for (int i = 0; i < o.passes; ++i) {
        const auto start = Clock::now();
        pass();
        r.passes.push_back(gbps(bytes, Clock::now() - start));
    }
    return r;
}

Result memcpyPeer(const Options &o, const std::vector<Piece> &pieces,
                  const platform::DeviceBuffer &source, int dst_device, uint64_t source_hash) {
    platform::DeviceBuffer target(o.total, dst_device);
    if (dst_device != o.src_device) platform::enablePeerAccess(o.src_device, dst_device);
    std::vector<platform::Stream> streams;
    for (int i = 0; i < o.streams; ++i) streams.emplace_back(o.src_device);
    Result r = measure("cudaMemcpyPeerAsync, 1 process", o, passBytes(pieces), [&] {
        size_t next = 0;
        for (const Piece &p : pieces) {
            // Pieces above the chunk size are split over the streams, as cuda_ipc does.
            for (size_t done = 0; done < p.bytes; done += o.chunk, ++next) {
                platform::cudaCheck(
                    cudaMemcpyPeerAsync(target.as<uint8_t>() + p.dst + done, dst_device,
                                        source.as<uint8_t>() + p.src + done, o.src_device,
                                        std::min(o.chunk, p.bytes - done),
                                        streams[next % streams.size()].get()),
                    "cudaMemcpyPeerAsync");
            }
        }
        for (const platform::Stream &s : streams) s.synchronize();
    });
    r.verified = !o.plan.empty() || hashDevice(target.data(), o.total) == source_hash;
    return r;
}

Result ipcPush(const Options &o, const std::vector<Piece> &pieces,
               const platform::DeviceBuffer &source, ChildProcess &receiver, const json &hello,
               uint64_t source_hash) {
    transport::CudaIpcOptions options;
    options.device = o.src_device;
    options.streams = o.streams;
    options.chunk_bytes = o.chunk;
    auto backend = transport::makeCudaIpcBackend(options);
    auto local =
        backend->registerMemory(source.data(), o.total, transport::MemoryKind::kCuda, o.src_device);
    backend->connect("receiver", hello.at("address").get<std::string>());
    auto remote = backend->importRegion("receiver",
                                        transport::RemoteDescriptor::fromJson(hello.at("region")));
    Result r = measure("cuda_ipc (CudaIpcBackend), 2 processes", o, passBytes(pieces), [&] {
        for (const Piece &p : pieces) backend->postWrite(*local, p.src, *remote, p.dst, p.bytes);
        (void)backend->flush(std::chrono::minutes(2));
    });
    const json reply = json::parse(receiver.ask("hash", kReply));
    r.verified = !o.plan.empty() || reply.at("hash").get<uint64_t>() == source_hash;
    return r;
}

int runSender(Options o, const std::string &command_line) {
    const std::vector<Piece> pieces = passPieces(o);  // may size o.total
    // The receiver first: no CUDA call may precede the spawn.
    ChildProcess receiver("/proc/self/exe",
                          {"--role", "receiver", "--total", std::to_string(o.total), "--dst-device",
                           std::to_string(o.dst_device), "--ballast", std::to_string(o.ballast)});
    const json hello = json::parse(receiver.readLine(kReply));
    if (hello.contains("skip")) {
        std::cerr << "bench_push_gpu: " << hello.at("skip").get<std::string>()
                  << "; nothing to measure\n";
        return 1;
    }
    const int dst_device = hello.at("device").get<int>();
    const int count = platform::deviceCount();
    const bool single = count < 2 || dst_device == o.src_device;
    int driver = 0;
    int runtime = 0;
    (void)cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    json devices = json::array();
    for (int d = 0; d < count; ++d) {
        devices.push_back({{"ordinal", d},
                           {"name", platform::deviceName(d)},
                           {"uuid", platform::uuidString(platform::deviceUuid(d))}});
    }
    platform::DeviceGuard guard(o.src_device);
    platform::DeviceBuffer source(o.total, o.src_device);
    const auto ballast = allocateBallast(o.ballast, o.src_device);
    fillSource(source, o.piece);
    const uint64_t source_hash = hashDevice(source.data(), o.total);

    fmt::print(
        "bench_push_gpu: {:.2f} GiB in {} MiB pieces over {} streams, {} passes after a "
        "warm-up, host-timed; GPU{} ({}) -> GPU{} ({})\n",
        static_cast<double>(o.total) / (1 << 30), o.piece >> 20, o.streams, o.passes, o.src_device,
        platform::deviceName(o.src_device), dst_device, platform::deviceName(dst_device));
    if (single) {
        fmt::print(
            "NOTE: one GPU only: both paths copy GPU{} -> GPU{} (device-local HBM, no "
            "NVLink); the numbers are not peer-to-peer numbers\n",
            o.src_device, dst_device);
    }
    std::vector<Result> results;
    results.push_back(memcpyPeer(o, pieces, source, dst_device, source_hash));
    results.push_back(ipcPush(o, pieces, source, receiver, hello, source_hash));

    const double base = results.front().best();
    fmt::print("{:<40} {:>9} {:>9} {:>13} {:>8}\n", "path", "best GB/s", "avg GB/s",
               "vs memcpyPeer", "verified");
    json rows = json::array();
    for (const Result &r : results) {
        fmt::print("{:<40} {:>9.1f} {:>9.1f} {:>13.3f} {:>8}\n", r.name, r.best(), r.average(),
                   r.best() / base, r.verified ? "yes" : "NO");
        rows.push_back({{"name", r.name},
                        {"best_gbps", r.best()},
                        {"avg_gbps", r.average()},
                        {"pass_gbps", r.passes},
                        {"ratio_vs_memcpy_peer", r.best() / base},
                        {"verified", r.verified}});
    }
    if (!o.json_out.empty()) {
        const json out{{"bench", "bench_push_gpu"},
                       {"command", command_line},
                       {"devices", devices},
                       {"cuda_driver_version", driver},
                       {"cuda_runtime_version", runtime},
                       {"src_device", o.src_device},
                       {"dst_device", dst_device},
                       {"single_gpu", single},
                       {"total_bytes", o.total},
                       {"piece_bytes", o.piece},
                       {"streams", o.streams},
                       {"chunk_bytes", o.chunk},
                       {"passes", o.passes},
                       {"plan", o.plan},
                       {"ballast_bytes", o.ballast},
                       {"writes_per_pass", pieces.size()},
                       {"bytes_per_pass", passBytes(pieces)},
                       {"timing", "host clock, post to completion, after one warm-up pass"},
                       {"results", rows}};
        std::ofstream(o.json_out) << out.dump(2) << "\n";
        fmt::print("wrote {}\n", o.json_out);
    }
    return std::all_of(results.begin(), results.end(), [](const Result &r) { return r.verified; })
               ? 0
               : 3;
}

}  // namespace
}  // namespace weightsync::bench

int main(int argc, char **argv) {
    using weightsync::bench::Options;
    Options o;
    CLI::App app{"GPU push throughput: cudaMemcpyPeerAsync vs a two-process CUDA IPC push"};
    app.add_option("--total", o.total, "bytes per pass")->check(CLI::PositiveNumber);
    app.add_option("--piece", o.piece, "bytes per write")->check(CLI::PositiveNumber);
    app.add_option("--passes", o.passes, "timed passes")->check(CLI::PositiveNumber);
    app.add_option("--streams", o.streams, "copy streams")->check(CLI::Range(1, 64));
    app.add_option("--chunk", o.chunk, "cuda_ipc chunk_bytes")->check(CLI::PositiveNumber);
    app.add_option("--plan", o.plan,
                   "MODEL:LAYERS: post the writes of that model's plan (1 trainer rank -> 1 "
                   "inference rank) instead of uniform pieces (not hash-verified)");
    app.add_option("--skip-below", o.skip_below, "with --plan: leave out smaller writes");
    app.add_option("--ballast", o.ballast,
                   "bytes of other device memory each side allocates after its buffer");
    app.add_option("--src-device", o.src_device, "sending GPU");
    app.add_option("--dst-device", o.dst_device, "receiving GPU (-1: 1 if there are two)");
    app.add_option("--json-out", o.json_out, "write the results as JSON");
    app.add_option("--role", o.role, "internal: sender or receiver")
        ->check(CLI::IsMember({"sender", "receiver"}));
    CLI11_PARSE(app, argc, argv);
    std::string command_line;
    for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
    try {
        return o.role == "receiver" ? weightsync::bench::runReceiver(o)
                                    : weightsync::bench::runSender(o, command_line);
    } catch (const std::exception &e) {
        std::cerr << "bench_push_gpu (" << o.role << "): " << e.what() << "\n";
        return 1;
    }
}
