// The host implementation of StagedTensors (memcpy), and the choice of the CUDA one.

#include "engine/staged_tensors.h"

#include "common/error.h"

#include <algorithm>
#include <cstring>

namespace weightsync::engine {

#if WEIGHTSYNC_HAVE_CUDA
std::unique_ptr<StagedTensors> makeCudaStagedTensors(std::vector<StagedTensor> tensors,
                                                     size_t bytes, int device);
#endif

namespace {

class HostStagedTensors : public StagedTensors {
  public:
    HostStagedTensors(std::vector<StagedTensor> tensors, size_t bytes)
        : tensors_(std::move(tensors)), staging_(platform::makeHostArena(bytes)) {}
    platform::Arena &staging() override { return *staging_; }
    void flip() override {
        for (const StagedTensor &t : tensors_)
            std::memcpy(t.live, staging_->data() + t.offset, t.bytes);
    }
    void commit() override { trade(); }
    void rollback() override { trade(); }

  private:
    void trade() {
        constexpr size_t kChunk = size_t{16} << 20;
        std::vector<std::byte> tmp;
        for (const StagedTensor &t : tensors_) {
            std::byte *staged = staging_->data() + t.offset;
            for (size_t at = 0; at < t.bytes; at += kChunk) {
                const size_t n = std::min(kChunk, t.bytes - at);
                tmp.resize(std::max(tmp.size(), n));
                std::memcpy(tmp.data(), t.live + at, n);
                std::memcpy(t.live + at, staged + at, n);
                std::memcpy(staged + at, tmp.data(), n);
            }
        }
    }

    std::vector<StagedTensor> tensors_;
    std::unique_ptr<platform::Arena> staging_;
};

}  // namespace

std::unique_ptr<StagedTensors> makeStagedTensors(std::vector<StagedTensor> tensors, size_t bytes,
                                                 int device) {
    for (const StagedTensor &t : tensors) {
        check(t.live != nullptr && t.offset + t.bytes <= bytes, Errc::kInternal,
              "a staged tensor lies outside its staging arena");
    }
    if (device >= 0) {
#if WEIGHTSYNC_HAVE_CUDA
        return makeCudaStagedTensors(std::move(tensors), bytes, device);
#else
        fail(Errc::kUnsupported,
             "this weightsync was built without CUDA; staging tensors on GPU {} needs a build with "
             "nvcc",
             device);
#endif
    }
    return std::make_unique<HostStagedTensors>(std::move(tensors), bytes);
}

}  // namespace weightsync::engine
