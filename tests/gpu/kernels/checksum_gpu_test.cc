// The CUDA checksum against checksumRef, bit for bit: aligned and unaligned ranges, padded last
// words, ranges of many tiles, many small ranges in one launch, and a flipped byte seen by both.

#include "gpu/kernels/gpu_test_util.h"
#include "kernels/checksum/checksum.cuh"
#include "kernels/checksum/checksum.h"
#include "kernels/checksum/checksum_ref.h"

#include <random>
#include <vector>

namespace weightsync::kernels {
namespace {

class KernelsChecksumGpu : public testing::GpuTest {
  protected:
    /// The GPU checksums of ranges [offset, offset + bytes) of `host`, copied to the device.
    std::vector<uint64_t> onGpu(const std::vector<std::byte> &host,
                                const std::vector<std::pair<size_t, size_t>> &ranges) {
        void *d_bytes = nullptr;
        EXPECT_EQ(cudaMalloc(&d_bytes, host.size()), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(d_bytes, host.data(), host.size(), cudaMemcpyHostToDevice),
                  cudaSuccess);
        std::vector<ChecksumRange> r;
        for (const auto &[offset, bytes] : ranges) {
            r.push_back({static_cast<const std::byte *>(d_bytes) + offset, bytes});
        }
        std::vector<ChecksumTile> tiles;
        checksumTiles(r, 0, tiles);
        void *d_tiles = nullptr;
        void *d_sums = nullptr;
        EXPECT_EQ(cudaMalloc(&d_tiles, std::max<size_t>(1, tiles.size() * sizeof(ChecksumTile))),
                  cudaSuccess);
        EXPECT_EQ(cudaMalloc(&d_sums, ranges.size() * sizeof(uint64_t)), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(d_tiles, tiles.data(), tiles.size() * sizeof(ChecksumTile),
                             cudaMemcpyHostToDevice),
                  cudaSuccess);
        EXPECT_EQ(cudaMemsetAsync(d_sums, 0, ranges.size() * sizeof(uint64_t), stream_),
                  cudaSuccess);
        EXPECT_EQ(checksumSums(static_cast<const ChecksumTile *>(d_tiles),
                               static_cast<uint32_t>(tiles.size()), static_cast<uint64_t *>(d_sums),
                               stream_),
                  cudaSuccess);
        EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
        std::vector<uint64_t> sums(ranges.size());
        EXPECT_EQ(
            cudaMemcpy(sums.data(), d_sums, sums.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost),
            cudaSuccess);
        cudaFree(d_sums);
        cudaFree(d_tiles);
        cudaFree(d_bytes);
        for (size_t i = 0; i < sums.size(); ++i) sums[i] = checksumFinal(sums[i], ranges[i].second);
        return sums;
    }

    static std::vector<uint64_t> onCpu(const std::vector<std::byte> &host,
                                       const std::vector<std::pair<size_t, size_t>> &ranges) {
        std::vector<uint64_t> out;
        for (const auto &[offset, bytes] : ranges)
            out.push_back(checksumRef(host.data() + offset, bytes));
        return out;
    }
};

std::vector<std::byte> randomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> b(n);
    for (std::byte &x : b) x = static_cast<std::byte>(rng());
    return b;
}

TEST_F(KernelsChecksumGpu, SameBitsAsTheReference) {
    const auto host = randomBytes((size_t{40} << 20) + 123, 1);
    const std::vector<std::pair<size_t, size_t>> ranges = {
        {0, 0},  // empty
        {0, 1},
        {8, 7},  // shorter than a word
        {0, 4096},
        {3, 4096},  // aligned, unaligned
        {16, 4099},
        {5, 4101},                    // padded last words
        {0, (size_t{1} << 19) + 8},   // just over one tile
        {8, size_t{33} << 20},        // many tiles
        {1, (size_t{7} << 20) + 13},  // many tiles, unaligned
    };
    EXPECT_EQ(onGpu(host, ranges), onCpu(host, ranges));
}

TEST_F(KernelsChecksumGpu, ManySmallRangesInOneLaunch) {
    const auto host = randomBytes(size_t{4} << 20, 2);
    std::mt19937 rng(3);
    std::vector<std::pair<size_t, size_t>> ranges;
    for (int i = 0; i < 5000; ++i) {
        const size_t bytes = rng() % 3000;
        ranges.emplace_back(rng() % (host.size() - bytes), bytes);
    }
    EXPECT_EQ(onGpu(host, ranges), onCpu(host, ranges));
}

TEST_F(KernelsChecksumGpu, AFlippedByteChangesBothAlike) {
    auto host = randomBytes(size_t{2} << 20, 4);
    const std::vector<std::pair<size_t, size_t>> ranges = {{64, (size_t{2} << 20) - 64}};
    const auto before = onGpu(host, ranges);
    host[777777] ^= std::byte{0x10};
    const auto after = onGpu(host, ranges);
    EXPECT_NE(after, before);
    EXPECT_EQ(after, onCpu(host, ranges));
}

}  // namespace
}  // namespace weightsync::kernels
