#pragma once
// sim::SyntheticCheck on a GPU: the rank's live device tensors compared on their device with the
// GPU reference converter (bit-identical to the CPU reference, see tests/gpu/convert).

#include "convert/cuda/cuda_reference.h"
#include "layout/layout.h"
#include "planner/topology.h"
#include "platform/cuda/resources.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weightsync::sim {

class DeviceCheck {
  public:
    /// Synthetic weights of `seed` for `layout` (which must outlive the check), compared on
    /// `gpu`. Throws Errc::kUnsupported without that GPU.
    DeviceCheck(const layout::Layout &layout, uint64_t seed, int gpu);
    [[nodiscard]] bool serves(const layout::Layout &layout, uint64_t seed, int gpu) const {
        return &layout == &layout_ && seed == seed_ && gpu == gpu_;
    }
    /// Mismatched bytes of `tensors` (device pointers, layout.dests() order) against version
    /// `version`; `checked` receives the bytes compared.
    int64_t mismatches(const planner::PeerSpec &peer, uint64_t version,
                       const std::vector<std::byte *> &tensors, int64_t &checked);

  private:
    const layout::Layout &layout_;
    uint64_t seed_;
    int gpu_;
    platform::Stream stream_;
    convert::CudaReference reference_;
};

}  // namespace weightsync::sim
