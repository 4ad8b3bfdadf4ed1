#include "platform/cuda/memory.h"

#include "platform/cuda/cuda_check.h"
#include "platform/cuda/driver_entry.h"

#include <cuda.h>

namespace weightsync::platform {
namespace {

using detail::driverEntry;

using GetAddressRange = CUresult (*)(CUdeviceptr *base, size_t *size, CUdeviceptr ptr);
using GetPointerAttribute = CUresult (*)(void *data, CUpointer_attribute attribute,
                                         CUdeviceptr ptr);

struct Driver {
    GetAddressRange get_address_range = driverEntry<GetAddressRange>("cuMemGetAddressRange");
    GetPointerAttribute get_pointer_attribute =
        driverEntry<GetPointerAttribute>("cuPointerGetAttribute");
};

// Resolved once, on first use (a throwing initializer is retried on the next call).
const Driver &driver() {
    static const Driver kDriver;
    return kDriver;
}

}  // namespace

PointerInfo pointerInfo(const void *ptr) {
    cudaPointerAttributes attributes{};
    cudaCheck(cudaPointerGetAttributes(&attributes, ptr), "cudaPointerGetAttributes({})", ptr);
    PointerInfo info;
    info.device = attributes.device;
    switch (attributes.type) {
        case cudaMemoryTypeHost: info.kind = PointerKind::kHost; break;
        case cudaMemoryTypeDevice: info.kind = PointerKind::kDevice; break;
        case cudaMemoryTypeManaged: info.kind = PointerKind::kManaged; break;
        default: info.kind = PointerKind::kUnregistered; break;
    }
    return info;
}

AllocationRange allocationRange(const void *ptr) {
    CUdeviceptr base = 0;
    size_t size = 0;
    const CUresult rc =
        driver().get_address_range(&base, &size, reinterpret_cast<CUdeviceptr>(ptr));
    check(rc == CUDA_SUCCESS, Errc::kInvalidArgument,
          "cuMemGetAddressRange({}) failed with CUresult {}: not device memory of this process",
          ptr, static_cast<int>(rc));
    return {static_cast<uintptr_t>(base), size};
}

bool legacyIpcCapable(const void *ptr) {
    int capable = 0;
    const CUresult rc =
        driver().get_pointer_attribute(&capable, CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE,
                                       reinterpret_cast<CUdeviceptr>(ptr));
    check(rc == CUDA_SUCCESS, Errc::kInvalidArgument,
          "cuPointerGetAttribute(IS_LEGACY_CUDA_IPC_CAPABLE, {}) failed with CUresult {}", ptr,
          static_cast<int>(rc));
    return capable != 0;
}

}  // namespace weightsync::platform
