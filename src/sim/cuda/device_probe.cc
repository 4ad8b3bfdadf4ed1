#include "sim/cuda/device_probe.h"

#include "common/error.h"
#include "kernels/probe/probe_read.cuh"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime_api.h>

namespace weightsync::sim {

namespace {

/// One probe step on the GPU: the window's fold into a device word, on the probe's stream,
/// waited for (a step ends when its read is done).
class DeviceStep {
  public:
    explicit DeviceStep(int gpu) : gpu_(gpu), stream_(gpu), sum_(sizeof(uint64_t), gpu) {}
    void operator()(const std::byte *data, size_t bytes) {
        const platform::DeviceGuard guard(gpu_);  // the ReadLoop's own thread
        platform::cudaCheck(cudaMemsetAsync(sum_.data(), 0, sizeof(uint64_t), stream_.get()),
                            "probe: zeroing its sum");
        platform::cudaCheck(kernels::probeFold(data, bytes, sum_.as<uint64_t>(), stream_.get()),
                            "probe: step");
        stream_.synchronize();
    }

  private:
    int gpu_;
    platform::Stream stream_;
    platform::DeviceBuffer sum_;
};

}  // namespace

std::unique_ptr<ReadLoop> makeDeviceProbe(const engine::LocalWeights &live,
                                          std::chrono::microseconds period, size_t window) {
    check(live.on_device, Errc::kInvalidArgument, "the GPU probe reads device tensors only");
    const int gpu = live.device;
    check(gpu >= 0 && gpu < platform::deviceCount(), Errc::kUnsupported,
          "the GPU probe needs GPU {}, this machine has {}", gpu, platform::deviceCount());
    const platform::DeviceGuard guard(gpu);
    auto step = std::make_shared<DeviceStep>(gpu);
    return std::make_unique<ReadLoop>(
        readWindows(live), period,
        [step](const std::byte *data, size_t bytes) { (*step)(data, bytes); }, window);
}

}  // namespace weightsync::sim
