#pragma once
// The generation probe on a GPU: a sim::ReadLoop whose step is a kernel on the rank's GPU, on a
// stream of its own, reading one window of the live device weights (kernels/probe/), one step
// after another as a decode loop does. The agent parks it like any reader, it follows a swap
// flip (rebind), and its longest gap between steps is the pause generation saw (the issue's
// probe: its last step on version N to its first on N + 1).

#include "engine/hooks.h"
#include "sim/read_loop.h"

#include <chrono>
#include <cstddef>
#include <memory>

namespace weightsync::sim {

/// A step reads 64 MiB (about 25 us of an H200's HBM bandwidth) and starts at most every 1 ms:
/// the gap it measures is exact to about a millisecond, and it takes a few percent of the
/// memory bandwidth the writes landing in staging share with it.
inline constexpr std::chrono::microseconds kDeviceProbePeriod{1000};
inline constexpr size_t kDeviceProbeWindow = size_t{64} << 20;

/// A probe over `live` (device tensors on live.device): a window of `window` bytes per step, a
/// step every `period` at most. Throws Errc::kUnsupported without that GPU.
std::unique_ptr<ReadLoop> makeDeviceProbe(const engine::LocalWeights &live,
                                          std::chrono::microseconds period = kDeviceProbePeriod,
                                          size_t window = kDeviceProbeWindow);

}  // namespace weightsync::sim
