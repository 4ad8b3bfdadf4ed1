#pragma once
// What a pointer is, as the CUDA driver sees it: host, device, managed; the allocation it belongs
// to; and whether legacy CUDA IPC (cudaIpcGetMemHandle) can export it. The driver calls go through
// cudaGetDriverEntryPointByVersion, so nothing links libcuda.so (a binary that did could not even
// start on a machine without the driver).

#include <cstddef>
#include <cstdint>

namespace weightsync::platform {

enum class PointerKind : uint8_t { kUnregistered, kHost, kDevice, kManaged };

struct PointerInfo {
    PointerKind kind = PointerKind::kUnregistered;
    int device = -1;  // the owning device for kDevice (the device current at allocation otherwise)
};

/// cudaPointerGetAttributes. Plain host memory (malloc) is kUnregistered.
PointerInfo pointerInfo(const void *ptr);

/// The whole allocation that contains ptr (cuMemGetAddressRange): its base and size.
struct AllocationRange {
    uintptr_t base = 0;
    size_t size = 0;
};
AllocationRange allocationRange(const void *ptr);

/// True for memory from cudaMalloc/cuMemAlloc (exportable with cudaIpcGetMemHandle); false for
/// VMM (cuMemCreate, e.g. PyTorch expandable segments), stream-ordered pool memory and the like.
bool legacyIpcCapable(const void *ptr);

}  // namespace weightsync::platform
