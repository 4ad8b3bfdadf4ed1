#pragma once
// CUDA runtime errors as weightsync::Error. For .cc files only: .cu files cannot include
// common/error.h (nvcc does not compile fmt 9's consteval format strings).

#include "common/error.h"

#include <cuda_runtime_api.h>

#include <string_view>

namespace weightsync::platform {

/// The code a CUDA runtime error maps to: kUnsupported when the build, driver or device cannot do
/// it (no driver, no device, not supported, no peer access, ...), kTransport for everything else.
Errc cudaErrc(cudaError_t err);

/// "<name> (<description>)" of a runtime error.
std::string cudaErrorText(cudaError_t err);

/// Throws Error(cudaErrc(err), "<what>: <name> (<description>)") unless err is cudaSuccess. A
/// failure also clears the runtime's last-error slot, so a later cudaGetLastError() is clean.
void cudaCheck(cudaError_t err, std::string_view what);

/// cudaCheck with a formatted description, formatted only on failure.
template <typename Arg, typename... Args>
void cudaCheck(cudaError_t err, fmt::format_string<Arg, Args...> format, Arg &&arg,
               Args &&...args) {
    if (err == cudaSuccess) return;
    cudaCheck(err, fmt::format(format, std::forward<Arg>(arg), std::forward<Args>(args)...));
}

}  // namespace weightsync::platform
