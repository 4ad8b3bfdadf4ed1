// The GPU probe's fold against probeFoldRef, bit for bit: aligned and unaligned ranges, padded
// last words, ranges larger than one grid pass, and a changed byte seen by both.

#include "gpu/kernels/gpu_test_util.h"
#include "kernels/probe/probe_read.cuh"
#include "kernels/probe/probe_read_ref.h"

#include <random>
#include <vector>

namespace weightsync::kernels {
namespace {

class KernelsProbeGpu : public testing::GpuTest {
  protected:
    /// The GPU fold of [offset, offset + bytes) of `host`, copied to the device.
    uint64_t onGpu(const std::vector<std::byte> &host, size_t offset, size_t bytes) {
        void *d_bytes = nullptr;
        void *d_sum = nullptr;
        EXPECT_EQ(cudaMalloc(&d_bytes, host.size()), cudaSuccess);
        EXPECT_EQ(cudaMalloc(&d_sum, sizeof(uint64_t)), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(d_bytes, host.data(), host.size(), cudaMemcpyHostToDevice),
                  cudaSuccess);
        EXPECT_EQ(cudaMemsetAsync(d_sum, 0, sizeof(uint64_t), stream_), cudaSuccess);
        EXPECT_EQ(probeFold(static_cast<const std::byte *>(d_bytes) + offset, bytes,
                            static_cast<uint64_t *>(d_sum), stream_),
                  cudaSuccess);
        EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
        uint64_t sum = 0;
        EXPECT_EQ(cudaMemcpy(&sum, d_sum, sizeof(sum), cudaMemcpyDeviceToHost), cudaSuccess);
        cudaFree(d_sum);
        cudaFree(d_bytes);
        return sum;
    }
};

std::vector<std::byte> randomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> out(n);
    for (std::byte &b : out) b = static_cast<std::byte>(rng() & 0xff);
    return out;
}

TEST_F(KernelsProbeGpu, MatchesTheReferenceBitForBit) {
    // 12 MiB + 13: more words than one pass of the largest grid (1024 x 256 threads).
    const std::vector<std::byte> host = randomBytes((size_t{12} << 20) + 13, 7);
    for (const auto &[offset, bytes] :
         std::vector<std::pair<size_t, size_t>>{{0, 8},
                                                {0, 1},
                                                {0, 13},
                                                {3, 13},
                                                {8, 4096},
                                                {5, 4099},
                                                {0, host.size()},
                                                {1, host.size() - 1}}) {
        SCOPED_TRACE(std::to_string(offset) + " + " + std::to_string(bytes));
        EXPECT_EQ(onGpu(host, offset, bytes), probeFoldRef(host.data() + offset, bytes));
    }
    EXPECT_EQ(onGpu(host, 0, 0), 0U);  // nothing to read
}

TEST_F(KernelsProbeGpu, AChangedByteChangesTheFold) {
    std::vector<std::byte> host = randomBytes(size_t{1} << 20, 9);
    const uint64_t before = onGpu(host, 0, host.size());
    host[123457] ^= std::byte{0x10};
    const uint64_t after = onGpu(host, 0, host.size());
    EXPECT_NE(before, after);
    EXPECT_EQ(after, probeFoldRef(host.data(), host.size()));
}

TEST_F(KernelsProbeGpu, RefusesARangeWithoutMemory) {
    EXPECT_EQ(probeFold(nullptr, 16, nullptr, stream_), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace weightsync::kernels
