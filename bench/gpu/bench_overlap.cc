// Does FP8 quantization on GPU0 slow down copy-engine writes GPU0 -> GPU1 that run at the same
// time, and by how much? The question behind the engine's pipeline (convert stage k+1 while
// stage k is written): the update costs max(convert, write) only if the two do not starve each
// other. Measured with CUDA events, in one process:
//   quant alone (per CTA cap), copy alone, both at once (per CTA cap);
// and reported as the overlapped time over max(alone) (1.00 = perfect overlap, 1 + min/max =
// no overlap at all). Every quantization is checked bit-exact against the CPU reference once.
//
//   bench_overlap --groups 64 --copy-bytes 4294967296 --ctas 0,2048,1024,528,264 --json-out o.json

#include "kernels/fp8/block_quant.cuh"
#include "kernels/fp8/block_quant_ref.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace weightsync::bench {
namespace {

using nlohmann::json;
using namespace weightsync::kernels;

struct Options {
    int64_t groups = 64;  // experts of 4096 x 6144 (GLM-5's fused w13 of one expert)
    int64_t rows = 4096;
    int64_t cols = 6144;
    size_t copy_bytes = size_t{4} << 30;
    size_t piece = size_t{64} << 20;
    int streams = 4;
    int reps = 5;
    std::vector<int> ctas{0, 2048, 1056, 528, 264};
    std::string json_out;
};

float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

class Overlap {
  public:
    explicit Overlap(const Options &o)
        : o_(o),
          peer_(platform::deviceCount() >= 2 ? 1 : 0),
          src_(static_cast<size_t>(o.groups * o.rows * o.cols) * 2, 0),
          dst_(static_cast<size_t>(o.groups * o.rows * o.cols), 0),
          scales_(static_cast<size_t>(o.groups * blocksOf(o.rows, kFp8BlockSize) *
                                      blocksOf(o.cols, kFp8BlockSize)) *
                      4,
                  0),
          copy_src_(o.copy_bytes, 0),
          copy_dst_(o.copy_bytes, peer_),
          quant_stream_(0) {
        if (peer_ != 0) platform::enablePeerAccess(0, peer_);
        for (int i = 0; i < o.streams; ++i) copy_streams_.emplace_back(0);
        fillSource();
        copy_src_.fill(0x5a);
    }

    [[nodiscard]] int peer() const { return peer_; }

    /// Quantization on its own; also checks one run against the CPU reference.
    float quantAlone(int ctas) {
        std::vector<float> ms;
        for (int r = 0; r < o_.reps; ++r) {
            platform::Event start(0, true), stop(0, true);
            start.record(quant_stream_.get());
            launchQuant(ctas);
            stop.record(quant_stream_.get());
            stop.synchronize();
            ms.push_back(platform::Event::elapsedMs(start, stop));
        }
        return median(ms);
    }

    float copyAlone() {
        std::vector<float> ms;
        for (int r = 0; r < o_.reps; ++r) {
            platform::Event start(0, true), stop(0, true);
            start.record(quant_stream_.get());
            launchCopies(start);
            joinCopies(stop);
            stop.synchronize();
            ms.push_back(platform::Event::elapsedMs(start, stop));
        }
        return median(ms);
    }

    struct Both {
        float total_ms, quant_ms, copy_ms;
    };

    Both both(int ctas) {
        std::vector<Both> runs;
        for (int r = 0; r < o_.reps; ++r) {
            platform::Event start(0, true), quant_done(0, true), copies_done(0, true);
            start.record(quant_stream_.get());
            launchCopies(start);
            launchQuant(ctas);
            quant_done.record(quant_stream_.get());
            joinCopies(copies_done);
            copies_done.synchronize();
            quant_done.synchronize();
            const float q = platform::Event::elapsedMs(start, quant_done);
            const float c = platform::Event::elapsedMs(start, copies_done);
            runs.push_back({std::max(q, c), q, c});
        }
        std::sort(runs.begin(), runs.end(),
                  [](const Both &a, const Both &b) { return a.total_ms < b.total_ms; });
        return runs[runs.size() / 2];
    }

    [[nodiscard]] bool checkQuant(int ctas) {
        launchQuant(ctas);
        platform::cudaCheck(cudaStreamSynchronize(quant_stream_.get()), "quant");
        const size_t n = static_cast<size_t>(o_.rows * o_.cols);  // first expert only
        std::vector<uint16_t> src(n);
        std::vector<uint8_t> got(n), want(n);
        const int64_t sb = blocksOf(o_.rows, kFp8BlockSize) * blocksOf(o_.cols, kFp8BlockSize);
        std::vector<float> got_s(static_cast<size_t>(sb)), want_s(static_cast<size_t>(sb));
        platform::cudaCheck(cudaMemcpy(src.data(), src_.data(), n * 2, cudaMemcpyDeviceToHost),
                            "read");
        platform::cudaCheck(cudaMemcpy(got.data(), dst_.data(), n, cudaMemcpyDeviceToHost), "read");
        platform::cudaCheck(
            cudaMemcpy(got_s.data(), scales_.data(), got_s.size() * 4, cudaMemcpyDeviceToHost),
            "read");
        blockQuantizeFp8Ref(
            denseConstView(src.data(), DType::kBF16, 1, o_.rows, o_.cols),
            denseView(want.data(), DType::kF8E4M3, 1, o_.rows, o_.cols),
            denseView(want_s.data(), DType::kF32, 1, blocksOf(o_.rows, kFp8BlockSize),
                      blocksOf(o_.cols, kFp8BlockSize)));
        return got == want && std::memcmp(got_s.data(), want_s.data(), got_s.size() * 4) == 0;
    }

    [[nodiscard]] double quantTraffic() const {
        return static_cast<double>(src_.size() + dst_.size() + scales_.size());
    }

  private:
    void fillSource() {
        std::vector<uint16_t> host(src_.size() / 2);
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        for (uint16_t &v : host) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const auto r = static_cast<uint32_t>(x);
            v = static_cast<uint16_t>(
                ((r & 0x8000U) | ((118U + (r >> 24) % 12U) << 7) | ((r >> 8) & 0x7fU)));
        }
        platform::cudaCheck(
            cudaMemcpy(src_.data(), host.data(), src_.size(), cudaMemcpyHostToDevice), "fill");
    }

    void launchQuant(int ctas) {
        const int64_t rb = blocksOf(o_.rows, kFp8BlockSize);
        const int64_t cb = blocksOf(o_.cols, kFp8BlockSize);
        platform::cudaCheck(
            blockQuantizeFp8(ConstView3{src_.data(), DType::kBF16, o_.groups, o_.rows, o_.cols,
                                        o_.rows * o_.cols, o_.cols},
                             View3{dst_.data(), DType::kF8E4M3, o_.groups, o_.rows, o_.cols,
                                   o_.rows * o_.cols, o_.cols},
                             View3{scales_.data(), DType::kF32, o_.groups, rb, cb, rb * cb, cb},
                             quant_stream_.get(), nullptr, ctas),
            "quantization");
    }

    void launchCopies(const platform::Event &start) {
        for (const platform::Stream &s : copy_streams_) {
            platform::cudaCheck(cudaStreamWaitEvent(s.get(), start.get(), 0), "stream wait");
        }
        size_t lane = 0;
        for (size_t at = 0; at < o_.copy_bytes; at += o_.piece, ++lane) {
            const size_t n = std::min(o_.piece, o_.copy_bytes - at);
            platform::cudaCheck(
                cudaMemcpyAsync(copy_dst_.as<uint8_t>() + at, copy_src_.as<uint8_t>() + at, n,
                                cudaMemcpyDeviceToDevice,
                                copy_streams_[lane % copy_streams_.size()].get()),
                "copy");
        }
    }

    void joinCopies(platform::Event &done) {
        std::vector<platform::Event> ends;
        for (const platform::Stream &s : copy_streams_) {
            ends.emplace_back(0);
            ends.back().record(s.get());
            platform::cudaCheck(cudaStreamWaitEvent(quant_stream_.get(), ends.back().get(), 0),
                                "stream wait");
        }
        done.record(quant_stream_.get());
    }

    Options o_;
    int peer_;
    platform::DeviceBuffer src_, dst_, scales_, copy_src_, copy_dst_;
    platform::Stream quant_stream_;
    std::vector<platform::Stream> copy_streams_;
};

int run(const Options &o) {
    if (platform::deviceCount() == 0) {
        std::cout << "no CUDA device\n";
        return 0;
    }
    Overlap bench(o);
    const float copy_ms = bench.copyAlone();
    const double copy_gbps = static_cast<double>(o.copy_bytes) / copy_ms / 1e6;
    json rows = json::array();
    fmt::print("quantize {}x{}x{} bf16 on GPU0 while copying {:.1f} GB GPU0 -> GPU{}\n", o.groups,
               o.rows, o.cols, static_cast<double>(o.copy_bytes) / 1e9, bench.peer());
    fmt::print("copy alone: {:.3f} ms ({:.1f} GB/s)\n", copy_ms, copy_gbps);
    fmt::print("{:>6} {:>10} {:>8} {:>10} {:>10} {:>10} {:>11} {:>10}\n", "ctas", "quant ms",
               "TB/s", "both ms", "quant in", "copy in", "both/max", "check");
    for (int ctas : o.ctas) {
        const float q = bench.quantAlone(ctas);
        const auto b = bench.both(ctas);
        const bool ok = bench.checkQuant(ctas);
        const double ratio = b.total_ms / std::max(q, copy_ms);
        fmt::print("{:>6} {:>10.3f} {:>8.2f} {:>10.3f} {:>10.3f} {:>10.3f} {:>11.3f} {:>10}\n",
                   ctas, q, bench.quantTraffic() / q / 1e9, b.total_ms, b.quant_ms, b.copy_ms,
                   ratio, ok ? "bit-exact" : "MISMATCH");
        rows.push_back({{"ctas", ctas},
                        {"quant_alone_ms", q},
                        {"quant_tbps", bench.quantTraffic() / q / 1e9},
                        {"both_ms", b.total_ms},
                        {"quant_in_both_ms", b.quant_ms},
                        {"copy_in_both_ms", b.copy_ms},
                        {"both_over_max_alone", ratio},
                        {"check", ok ? "bit-exact" : "MISMATCH"}});
        if (!ok) return 1;
    }
    if (!o.json_out.empty()) {
        std::ofstream(o.json_out) << json{
            {"benchmark", "bench_overlap"},
            {"command", "bench_overlap --json-out " + o.json_out},
            {"shape", {o.groups, o.rows, o.cols}},
            {"copy_bytes", o.copy_bytes},
            {"copy_alone_ms", copy_ms},
            {"copy_gbps", copy_gbps},
            {"peer_device", bench.peer()},
            {"rows", rows}}.dump(2);
    }
    return 0;
}

}  // namespace
}  // namespace weightsync::bench

int main(int argc, char **argv) {
    weightsync::bench::Options o;
    CLI::App app{"overlap of FP8 quantization with copy-engine writes to the peer GPU"};
    app.add_option("--groups", o.groups, "experts of rows x cols")->capture_default_str();
    app.add_option("--copy-bytes", o.copy_bytes, "bytes written GPU0 -> GPU1")
        ->capture_default_str();
    app.add_option("--piece", o.piece, "bytes per cudaMemcpyAsync")->capture_default_str();
    app.add_option("--streams", o.streams, "copy streams")->capture_default_str();
    app.add_option("--reps", o.reps, "repetitions (median)")->capture_default_str();
    app.add_option("--ctas", o.ctas, "CTA caps of the quantization kernel (0 = none)")
        ->delimiter(',');
    app.add_option("--json-out", o.json_out, "write results here");
    CLI11_PARSE(app, argc, argv);
    try {
        return weightsync::bench::run(o);
    } catch (const std::exception &e) {
        std::cerr << "bench_overlap: " << e.what() << "\n";
        return 1;
    }
}
