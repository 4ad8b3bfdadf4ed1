// CPU reference throughput (google-benchmark). Bytes/s counts the source bytes read.
//   bench_quant_cpu [--benchmark_filter=...] [--benchmark_out=PATH --benchmark_out_format=json]

#include "common/dtype.h"
#include "kernels/checksum/checksum_ref.h"
#include "kernels/convert/cast_ref.h"
#include "kernels/fp8/block_quant_ref.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace weightsync::kernels {
namespace {

std::vector<float> randomValues(int64_t n) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v) x = normal(rng);
    return v;
}

void benchQuantBf16(benchmark::State &state) {
    const int64_t rows = state.range(0);
    const int64_t cols = state.range(1);
    const std::vector<float> values = randomValues(rows * cols);
    std::vector<uint16_t> src(values.size());
    for (size_t i = 0; i < src.size(); ++i) src[i] = f32ToBf16Bits(values[i]);
    std::vector<uint8_t> dst(src.size());
    std::vector<float> scales(
        static_cast<size_t>(blocksOf(rows, kFp8BlockSize) * blocksOf(cols, kFp8BlockSize)));
    for (auto _ : state) {
        blockQuantizeFp8Ref(denseConstView(src.data(), DType::kBF16, 1, rows, cols),
                            denseView(dst.data(), DType::kF8E4M3, 1, rows, cols),
                            denseView(scales.data(), DType::kF32, 1, blocksOf(rows, kFp8BlockSize),
                                      blocksOf(cols, kFp8BlockSize)));
        benchmark::DoNotOptimize(dst.data());
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 2);
}

void benchQuantF32(benchmark::State &state) {
    const int64_t rows = state.range(0);
    const int64_t cols = state.range(1);
    const std::vector<float> src = randomValues(rows * cols);
    std::vector<uint8_t> dst(src.size());
    std::vector<float> scales(
        static_cast<size_t>(blocksOf(rows, kFp8BlockSize) * blocksOf(cols, kFp8BlockSize)));
    for (auto _ : state) {
        blockQuantizeFp8Ref(denseConstView(src.data(), DType::kF32, 1, rows, cols),
                            denseView(dst.data(), DType::kF8E4M3, 1, rows, cols),
                            denseView(scales.data(), DType::kF32, 1, blocksOf(rows, kFp8BlockSize),
                                      blocksOf(cols, kFp8BlockSize)));
        benchmark::DoNotOptimize(dst.data());
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}

void benchCastF32ToBf16(benchmark::State &state) {
    const int64_t rows = state.range(0);
    const int64_t cols = state.range(1);
    const std::vector<float> src = randomValues(rows * cols);
    std::vector<uint16_t> dst(src.size());
    for (auto _ : state) {
        castRef(denseConstView(src.data(), DType::kF32, 1, rows, cols),
                denseView(dst.data(), DType::kBF16, 1, rows, cols));
        benchmark::DoNotOptimize(dst.data());
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}

/// The landed-bytes checksum's sum (kernels/checksum/checksum_ref.h) over a buffer of
/// range(0) bytes: a few MiB stay in cache (the hash of a write converted just before), 1 GiB
/// streams from memory. range(1): 1 = the dispatching sum (AVX-512 where the CPU has it), 0 =
/// the portable loop.
void benchChecksum(benchmark::State &state) {
    const auto bytes = static_cast<size_t>(state.range(0));
    std::vector<std::byte> buffer(bytes);
    for (size_t i = 0; i < bytes; ++i) buffer[i] = static_cast<std::byte>(i * 131 + 7);
    const bool dispatch = state.range(1) != 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(dispatch ? checksumSumRef(buffer.data(), bytes)
                                          : checksumSumPortable(buffer.data(), bytes));
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}

BENCHMARK(benchQuantBf16)->Args({4096, 4096})->Args({4000, 4000})->Unit(benchmark::kMillisecond);
BENCHMARK(benchQuantF32)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(benchCastF32ToBf16)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(benchChecksum)
    ->Args({4 << 20, 1})
    ->Args({4 << 20, 0})
    ->Args({1 << 30, 1})
    ->Args({1 << 30, 0})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace weightsync::kernels

BENCHMARK_MAIN();
