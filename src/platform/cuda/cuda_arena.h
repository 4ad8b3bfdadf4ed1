#pragma once
// An Arena in GPU memory: one plain cudaMalloc (never VMM or managed memory, so CUDA IPC
// can export it and UCX can register it), zero-filled, released on destruction.

#include "platform/arena.h"

#include <cstddef>
#include <memory>

namespace weightsync::platform {

/// A device arena of `bytes` on `device` (kind kCuda). Throws kUnsupported without that device,
/// kTransport when the allocation fails.
std::unique_ptr<Arena> makeCudaArena(size_t bytes, int device);

}  // namespace weightsync::platform
