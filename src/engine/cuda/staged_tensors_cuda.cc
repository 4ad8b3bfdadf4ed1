// The CUDA implementation of StagedTensors: a cudaMalloc staging arena on the caller's GPU,
// copied over (flip) or traded with (commit) the caller's tensors device to device.

#include "common/error.h"
#include "engine/staged_tensors.h"
#include "platform/cuda/cuda_arena.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime.h>

#include <algorithm>

namespace weightsync::engine {

namespace {

class CudaStagedTensors : public StagedTensors {
  public:
    CudaStagedTensors(std::vector<StagedTensor> tensors, size_t bytes, int device)
        : device_(device),
          tensors_(std::move(tensors)),
          staging_(platform::makeCudaArena(bytes, device)),
          stream_(device) {}
    platform::Arena &staging() override { return *staging_; }
    void flip() override {
        const platform::DeviceGuard guard(device_);
        for (const StagedTensor &t : tensors_) {
            platform::cudaCheck(cudaMemcpyAsync(t.live, staging_->data() + t.offset, t.bytes,
                                                cudaMemcpyDeviceToDevice, stream_.get()),
                                "flip: staging -> the caller's tensors");
        }
        stream_.synchronize();
    }
    void commit() override { trade("staging commit"); }
    void rollback() override { trade("staging rollback"); }

  private:
    /// Each tensor <-> its staged copy through a device buffer of at most kChunk bytes.
    void trade(const char *what) {
        constexpr size_t kChunk = size_t{256} << 20;
        const platform::DeviceGuard guard(device_);
        size_t largest = 0;
        for (const StagedTensor &t : tensors_) largest = std::max(largest, t.bytes);
        if (!tmp_ && largest > 0)
            tmp_ = platform::makeCudaArena(std::min(kChunk, largest), device_);
        for (const StagedTensor &t : tensors_) {
            std::byte *staged = staging_->data() + t.offset;
            for (size_t at = 0; at < t.bytes; at += kChunk) {
                const size_t n = std::min(kChunk, t.bytes - at);
                const auto copy = [&](std::byte *to, const std::byte *from) {
                    platform::cudaCheck(
                        cudaMemcpyAsync(to, from, n, cudaMemcpyDeviceToDevice, stream_.get()),
                        what);
                };
                copy(tmp_->data(), t.live + at);
                copy(t.live + at, staged + at);
                copy(staged + at, tmp_->data());
            }
        }
        stream_.synchronize();
    }

    int device_;
    std::vector<StagedTensor> tensors_;
    std::unique_ptr<platform::Arena> staging_;
    std::unique_ptr<platform::Arena> tmp_;
    platform::Stream stream_;
};

}  // namespace

std::unique_ptr<StagedTensors> makeCudaStagedTensors(std::vector<StagedTensor> tensors,
                                                     size_t bytes, int device) {
    check(device < platform::deviceCount(), Errc::kUnsupported,
          "the caller's tensors are on GPU {}, this machine has {}", device,
          platform::deviceCount());
    return std::make_unique<CudaStagedTensors>(std::move(tensors), bytes, device);
}

}  // namespace weightsync::engine
