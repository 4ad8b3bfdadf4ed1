#include "platform/cuda/cuda_check.h"

#include <fmt/format.h>

namespace weightsync::platform {

Errc cudaErrc(cudaError_t err) {
    switch (err) {
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorStubLibrary:
        case cudaErrorCallRequiresNewerDriver:
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
        case cudaErrorDevicesUnavailable:
        case cudaErrorNotSupported:
        case cudaErrorPeerAccessUnsupported:
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorUnsupportedPtxVersion: return Errc::kUnsupported;
        default: return Errc::kTransport;
    }
}

std::string cudaErrorText(cudaError_t err) {
    return fmt::format("{} ({})", cudaGetErrorName(err), cudaGetErrorString(err));
}

void cudaCheck(cudaError_t err, std::string_view what) {
    if (err == cudaSuccess) return;
    (void)cudaGetLastError();  // a non-sticky error must not resurface in an unrelated check
    throw Error(cudaErrc(err), fmt::format("{}: {}", what, cudaErrorText(err)));
}

}  // namespace weightsync::platform
