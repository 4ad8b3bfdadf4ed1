// Times the CUDA FP8 block quantizer with CUDA events and compares it with a same-run D2D copy.
//   bench_quant [--reps N] [--warmup N] [--no-check] [--json-out PATH]
// Traffic counted per case is the minimum: source bytes read + 1 B per element + 4 B per scale.

#include "common/dtype.h"
#include "kernels/fp8/block_quant.cuh"
#include "kernels/fp8/block_quant_ref.h"

#include <cuda_runtime_api.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace weightsync;
using namespace weightsync::kernels;

#define BENCH_CUDA(expr)                                                                    \
    do {                                                                                    \
        const cudaError_t bench_err_ = (expr);                                              \
        if (bench_err_ != cudaSuccess) {                                                    \
            std::fprintf(stderr, "%s failed: %s\n", #expr, cudaGetErrorString(bench_err_)); \
            std::exit(1);                                                                   \
        }                                                                                   \
    } while (0)

struct Case {
    std::string name;
    DType dtype;
    int64_t groups, rows, cols;
    bool batch;  // one job per group through blockQuantizeFp8Batch
};

struct Options {
    int reps = 50;
    int warmup = 10;
    bool check = true;
    std::string json_out;
};

// Host source: sign, exponent around 2^-7..2^3 and mantissa from a xorshift stream.
std::vector<uint8_t> makeSource(const Case &c) {
    const int64_t n = c.groups * c.rows * c.cols;
    std::vector<uint8_t> bytes(static_cast<size_t>(n) * dtypeSize(c.dtype));
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int64_t i = 0; i < n; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        const auto r = static_cast<uint32_t>(state);
        const uint32_t bits =
            (r & 0x80000000U) | ((120U + (r >> 24) % 11U) << 23) | (r & 0x7fffffU);
        if (c.dtype == DType::kBF16) {
            reinterpret_cast<uint16_t *>(bytes.data())[i] = static_cast<uint16_t>(bits >> 16);
        } else {
            reinterpret_cast<uint32_t *>(bytes.data())[i] = bits;
        }
    }
    return bytes;
}

struct Buffers {
    void *src = nullptr;
    void *dst = nullptr;
    void *scales = nullptr;
};

float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Reps are enqueued back to back with an event between each, and waited for once: the GPU time
// of each rep, without the host's launch latency in front of it (the host stays ahead of a
// 0.1+ ms kernel; had it not, the gaps would show as longer reps).
template <typename F>
std::vector<float> timeReps(const Options &opt, int sets, cudaStream_t stream, F launch) {
    for (int i = 0; i < opt.warmup; ++i) launch(i % sets);
    std::vector<cudaEvent_t> marks(static_cast<size_t>(opt.reps) + 1);
    for (cudaEvent_t &e : marks) BENCH_CUDA(cudaEventCreate(&e));
    BENCH_CUDA(cudaEventRecord(marks[0], stream));
    for (int i = 0; i < opt.reps; ++i) {
        launch(i % sets);
        BENCH_CUDA(cudaEventRecord(marks[static_cast<size_t>(i) + 1], stream));
    }
    BENCH_CUDA(cudaEventSynchronize(marks.back()));
    std::vector<float> ms;
    for (size_t i = 0; i + 1 < marks.size(); ++i) {
        float t = 0;
        BENCH_CUDA(cudaEventElapsedTime(&t, marks[i], marks[i + 1]));
        ms.push_back(t);
    }
    for (cudaEvent_t e : marks) cudaEventDestroy(e);
    return ms;
}

nlohmann::json runCase(const Case &c, const Options &opt, int64_t l2_bytes, cudaStream_t stream) {
    const int64_t n = c.groups * c.rows * c.cols;
    const int64_t rb = blocksOf(c.rows, kFp8BlockSize);
    const int64_t cb = blocksOf(c.cols, kFp8BlockSize);
    const auto src_bytes = static_cast<size_t>(n) * dtypeSize(c.dtype);
    const auto scale_bytes = static_cast<size_t>(c.groups * rb * cb * kScaleBytes);
    // Enough buffer sets that consecutive reps never hit in L2.
    const int sets = static_cast<int>(std::max<int64_t>(2, 1 + 2 * l2_bytes / (int64_t)src_bytes));
    const std::vector<uint8_t> host = makeSource(c);
    std::vector<Buffers> bufs(static_cast<size_t>(sets));
    for (Buffers &b : bufs) {
        BENCH_CUDA(cudaMalloc(&b.src, src_bytes));
        BENCH_CUDA(cudaMalloc(&b.dst, static_cast<size_t>(n)));
        BENCH_CUDA(cudaMalloc(&b.scales, scale_bytes));
        BENCH_CUDA(cudaMemcpy(b.src, host.data(), src_bytes, cudaMemcpyHostToDevice));
    }
    const auto views = [&](const Buffers &b, int64_t g0, int64_t ng) {
        return QuantJob{
            ConstView3{static_cast<const char *>(b.src) + g0 * c.rows * c.cols * dtypeSize(c.dtype),
                       c.dtype, ng, c.rows, c.cols, c.rows * c.cols, c.cols},
            View3{static_cast<char *>(b.dst) + g0 * c.rows * c.cols, DType::kF8E4M3, ng, c.rows,
                  c.cols, c.rows * c.cols, c.cols},
            View3{static_cast<float *>(b.scales) + g0 * rb * cb, DType::kF32, ng, rb, cb, rb * cb,
                  cb}};
    };
    // Job lists are built outside the timed region; batch cases have one job per group.
    std::vector<std::vector<QuantJob>> jobs(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) {
        for (int64_t g = 0; g < (c.batch ? c.groups : 1); ++g) {
            jobs[i].push_back(c.batch ? views(bufs[i], g, 1) : views(bufs[i], 0, c.groups));
        }
    }
    const auto launch = [&](int set) {
        const std::vector<QuantJob> &j = jobs[static_cast<size_t>(set)];
        if (c.batch) {
            BENCH_CUDA(blockQuantizeFp8Batch(j.data(), static_cast<int>(j.size()), stream));
        } else {
            BENCH_CUDA(blockQuantizeFp8(j[0].src, j[0].dst, j[0].scales, stream));
        }
    };
    const std::vector<float> quant_ms = timeReps(opt, sets, stream, launch);
    // Same-run ceiling: a D2D copy of the source bytes (reads + writes 2x src_bytes).
    const std::vector<float> copy_ms = timeReps(opt, sets, stream, [&](int set) {
        const Buffers &from = bufs[static_cast<size_t>(set)];
        const Buffers &to = bufs[static_cast<size_t>((set + 1) % sets)];
        BENCH_CUDA(cudaMemcpyAsync(to.src, from.src, src_bytes, cudaMemcpyDeviceToDevice, stream));
    });
    // Restore set 0's source (the copies overwrote it with identical bytes, but be explicit).
    BENCH_CUDA(cudaMemcpy(bufs[0].src, host.data(), src_bytes, cudaMemcpyHostToDevice));
    std::string check = "skipped";
    if (opt.check) {
        launch(0);
        BENCH_CUDA(cudaStreamSynchronize(stream));
        std::vector<uint8_t> got_q(static_cast<size_t>(n)), want_q(static_cast<size_t>(n));
        std::vector<float> got_s(scale_bytes / sizeof(float)), want_s(scale_bytes / sizeof(float));
        BENCH_CUDA(cudaMemcpy(got_q.data(), bufs[0].dst, got_q.size(), cudaMemcpyDeviceToHost));
        BENCH_CUDA(cudaMemcpy(got_s.data(), bufs[0].scales, scale_bytes, cudaMemcpyDeviceToHost));
        blockQuantizeFp8Ref(denseConstView(host.data(), c.dtype, c.groups, c.rows, c.cols),
                            denseView(want_q.data(), DType::kF8E4M3, c.groups, c.rows, c.cols),
                            denseView(want_s.data(), DType::kF32, c.groups, rb, cb));
        const bool same =
            got_q == want_q &&
            std::equal(got_s.begin(), got_s.end(), want_s.begin(), [](float a, float b) {
                return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
            });
        check = same ? "bit-exact" : "MISMATCH";
    }
    for (Buffers &b : bufs) {
        cudaFree(b.src);
        cudaFree(b.dst);
        cudaFree(b.scales);
    }
    const double traffic =
        static_cast<double>(src_bytes) + static_cast<double>(n) + static_cast<double>(scale_bytes);
    const double q_ms = median(quant_ms);
    const double c_ms = median(copy_ms);
    return {{"case", c.name},
            {"dtype", std::string(dtypeName(c.dtype))},
            {"shape", {c.groups, c.rows, c.cols}},
            {"api", c.batch ? "blockQuantizeFp8Batch" : "blockQuantizeFp8"},
            {"buffer_sets", sets},
            {"median_ms", q_ms},
            {"min_ms", *std::min_element(quant_ms.begin(), quant_ms.end())},
            {"traffic_bytes", traffic},
            {"tbps", traffic / (q_ms * 1e-3) / 1e12},
            {"copy_median_ms", c_ms},
            {"copy_rw_tbps", 2.0 * static_cast<double>(src_bytes) / (c_ms * 1e-3) / 1e12},
            {"check", check}};
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--reps" && i + 1 < argc) {
            opt.reps = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--warmup" && i + 1 < argc) {
            opt.warmup = std::atoi(argv[++i]);
        } else if (a == "--no-check") {
            opt.check = false;
        } else if (a == "--json-out" && i + 1 < argc) {
            opt.json_out = argv[++i];
        } else {
            std::fprintf(stderr,
                         "usage: %s [--reps N] [--warmup N] [--no-check] [--json-out PATH]\n",
                         argv[0]);
            return 2;
        }
    }
    int device = 0;
    BENCH_CUDA(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    BENCH_CUDA(cudaGetDeviceProperties(&prop, device));
    cudaStream_t stream;
    BENCH_CUDA(cudaStreamCreate(&stream));
    const std::vector<Case> cases = {
        {"matrix 16384x16384", DType::kBF16, 1, 16384, 16384, false},
        {"experts 8x4096x6144", DType::kBF16, 8, 4096, 6144, false},
        {"experts 16x4096x6144", DType::kBF16, 16, 4096, 6144, false},
        {"experts 16x4096x6144 as 16 jobs", DType::kBF16, 16, 4096, 6144, true},
        {"matrix 16384x16384 fp32 source", DType::kF32, 1, 16384, 16384, false},
    };
    nlohmann::json results = nlohmann::json::array();
    std::printf("%-34s %6s %10s %10s %12s %12s  %s\n", "case", "dtype", "median ms", "TB/s",
                "copy TB/s", "ratio", "check");
    for (const Case &c : cases) {
        nlohmann::json r = runCase(c, opt, prop.l2CacheSize, stream);
        std::printf("%-34s %6s %10.4f %10.3f %12.3f %12.2f  %s\n", c.name.c_str(),
                    std::string(dtypeName(c.dtype)).c_str(), r["median_ms"].get<double>(),
                    r["tbps"].get<double>(), r["copy_rw_tbps"].get<double>(),
                    r["tbps"].get<double>() / r["copy_rw_tbps"].get<double>(),
                    r["check"].get<std::string>().c_str());
        std::fflush(stdout);
        results.push_back(r);
    }
    const nlohmann::json doc = {
        {"benchmark", "bench_quant"}, {"command", command},
        {"device", prop.name},        {"reps", opt.reps},
        {"warmup", opt.warmup},       {"traffic", "src bytes + 1 B/element + 4 B/scale"},
        {"results", results}};
    if (!opt.json_out.empty()) std::ofstream(opt.json_out) << doc.dump(2) << "\n";
    cudaStreamDestroy(stream);
    return 0;
}
