#include "platform/cuda/memory.h"

#include "platform/cuda/cuda_check.h"

#include <cuda.h>

namespace weightsync::platform {
namespace {

// Driver ABI of CUDA 12.0, the oldest this build asks the driver for.
constexpr unsigned int kDriverAbi = 12000;

using GetAddressRange = CUresult (*)(CUdeviceptr *base, size_t *size, CUdeviceptr ptr);
using GetPointerAttribute = CUresult (*)(void *data, CUpointer_attribute attribute,
                                         CUdeviceptr ptr);

template <typename Fn>
Fn driverEntry(const char *symbol) {
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    cudaCheck(cudaGetDriverEntryPointByVersion(symbol, &fn, kDriverAbi, cudaEnableDefault, &found),
              "cudaGetDriverEntryPointByVersion({})", symbol);
    check(found == cudaDriverEntryPointSuccess && fn != nullptr, Errc::kUnsupported,
          "the CUDA driver has no entry point {} (query result {})", symbol,
          static_cast<int>(found));
    return reinterpret_cast<Fn>(fn);
}

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
