// The CUDA checksummer: device ranges cut into tiles on the host, one kernel launch on the
// device's own stream, the sums copied back and finished on the host.

#include "common/error.h"
#include "engine/checksum.h"
#include "kernels/checksum/checksum.cuh"
#include "kernels/checksum/checksum.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

namespace weightsync::engine {

namespace {

class CudaChecksummer : public Checksummer {
  public:
    explicit CudaChecksummer(int gpu) : gpu_(gpu), guard_(gpu), stream_(gpu) {}

    std::vector<uint64_t> compute(std::span<const ByteRange> ranges) override {
        const platform::DeviceGuard guard(gpu_);
        std::vector<kernels::ChecksumRange> r;
        r.reserve(ranges.size());
        for (const ByteRange &b : ranges) r.push_back({b.data, b.bytes});
        std::vector<kernels::ChecksumTile> tiles;
        kernels::checksumTiles(r, 0, tiles);
        reserve(tiles_, tiles.size() * sizeof(kernels::ChecksumTile));
        reserve(sums_, ranges.size() * sizeof(uint64_t));
        std::vector<uint64_t> sums(ranges.size());
        if (!ranges.empty()) {
            platform::cudaCheck(
                cudaMemsetAsync(sums_.data(), 0, sums.size() * sizeof(uint64_t), stream_.get()),
                "checksum: zeroing the sums");
        }
        if (!tiles.empty()) {
            platform::cudaCheck(cudaMemcpyAsync(tiles_.data(), tiles.data(),
                                                tiles.size() * sizeof(kernels::ChecksumTile),
                                                cudaMemcpyHostToDevice, stream_.get()),
                                "checksum: uploading the tiles");
            platform::cudaCheck(kernels::checksumSums(tiles_.as<kernels::ChecksumTile>(),
                                                      static_cast<uint32_t>(tiles.size()),
                                                      sums_.as<uint64_t>(), stream_.get()),
                                "checksum: launching the kernel");
        }
        if (!ranges.empty()) {
            platform::cudaCheck(
                cudaMemcpyAsync(sums.data(), sums_.data(), sums.size() * sizeof(uint64_t),
                                cudaMemcpyDeviceToHost, stream_.get()),
                "checksum: reading the sums");
        }
        stream_.synchronize();
        for (size_t i = 0; i < sums.size(); ++i) {
            sums[i] = kernels::checksumFinal(sums[i], ranges[i].bytes);
        }
        return sums;
    }

  private:
    void reserve(platform::DeviceBuffer &buffer, size_t bytes) const {
        if (buffer.size() < bytes) buffer = platform::DeviceBuffer(bytes, gpu_);
    }

    int gpu_;
    platform::DeviceGuard guard_;
    platform::Stream stream_;
    platform::DeviceBuffer tiles_;
    platform::DeviceBuffer sums_;
};

}  // namespace

std::unique_ptr<Checksummer> makeCudaChecksummer(int gpu) {
    check(gpu >= 0 && gpu < platform::deviceCount(), Errc::kUnsupported,
          "checksums on GPU {}: this machine has {}", gpu, platform::deviceCount());
    return std::make_unique<CudaChecksummer>(gpu);
}

}  // namespace weightsync::engine
