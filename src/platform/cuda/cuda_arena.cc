#include "platform/cuda/cuda_arena.h"

#include "common/error.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <algorithm>

namespace weightsync::platform {
namespace {

class CudaArena final : public Arena {
  public:
    CudaArena(size_t bytes, int device)
        : buffer_(std::max<size_t>(bytes, 1), device), size_(bytes) {
        buffer_.fill(0);
    }

    [[nodiscard]] std::byte *data() const override { return buffer_.as<std::byte>(); }
    [[nodiscard]] size_t size() const override { return size_; }
    [[nodiscard]] MemoryKind kind() const override { return MemoryKind::kCuda; }
    [[nodiscard]] int device() const override { return buffer_.device(); }

  private:
    DeviceBuffer buffer_;
    size_t size_;
};

}  // namespace

std::unique_ptr<Arena> makeCudaArena(size_t bytes, int device) {
    const int count = deviceCount();
    check(device >= 0 && device < count, Errc::kUnsupported,
          "cannot allocate a {}-byte GPU arena on device {}: {} CUDA device(s) visible", bytes,
          device, count);
    return std::make_unique<CudaArena>(bytes, device);
}

}  // namespace weightsync::platform
