#include "sim/cuda/device_check.h"

#include "common/error.h"
#include "platform/cuda/device.h"

namespace weightsync::sim {

namespace {

int checkedGpu(int gpu) {
    check(gpu >= 0 && gpu < platform::deviceCount(), Errc::kUnsupported,
          "checking weights on GPU {}: this machine has {}", gpu, platform::deviceCount());
    return gpu;
}

}  // namespace

DeviceCheck::DeviceCheck(const layout::Layout &layout, uint64_t seed, int gpu)
    : layout_(layout),
      seed_(seed),
      gpu_(checkedGpu(gpu)),
      stream_(gpu),
      reference_(layout, seed, gpu) {}

int64_t DeviceCheck::mismatches(const planner::PeerSpec &peer, uint64_t version,
                                const std::vector<std::byte *> &tensors, int64_t &checked) {
    const platform::DeviceGuard guard(gpu_);
    const std::vector<const std::byte *> device(tensors.begin(), tensors.end());
    const std::vector<int64_t> bad = reference_.compare(peer, version, device, stream_.get());
    int64_t mismatched = 0;
    for (int64_t b : bad) mismatched += b;
    checked = 0;
    for (const planner::LocalTensor &t : planner::localTensors(layout_, peer)) checked += t.bytes;
    return mismatched;
}

}  // namespace weightsync::sim
