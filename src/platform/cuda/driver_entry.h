#pragma once
// Driver API functions reached through the runtime's entry-point query, so that nothing links
// libcuda directly (the runtime finds the driver at run time; a machine without one still runs
// the CPU paths).

#include "common/error.h"
#include "platform/cuda/cuda_check.h"

#include <cuda.h>
#include <cuda_runtime_api.h>

namespace weightsync::platform::detail {

/// Driver ABI of CUDA 12.0, the oldest this build asks the driver for.
inline constexpr unsigned int kDriverAbi = 12000;

/// The driver's `symbol` as a function pointer of type Fn. Throws kUnsupported when the driver
/// has no such entry point.
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

}  // namespace weightsync::platform::detail
