#include "transport/registry.h"

#include "transport/inproc/inproc_backend.h"
#include "transport/ucx/ucx_backend.h"
#ifdef WEIGHTSYNC_HAVE_CUDA
#include "transport/cuda_ipc/cuda_ipc_backend.h"
#endif

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace weightsync::transport {

std::vector<std::string> backendNames() {
#ifdef WEIGHTSYNC_HAVE_CUDA
    return {"ucx", "inproc", "cuda_ipc"};
#else
    return {"ucx", "inproc"};
#endif
}

std::unique_ptr<TransportBackend> makeBackend(const std::string &name,
                                              const nlohmann::json &options) {
    if (name == "ucx") return makeUcxBackend(UcxOptions::fromJson(options));
    if (name == "inproc") {
        check(options.is_null() || options.empty(), Errc::kInvalidArgument,
              "the inproc backend takes no options, got {}", options.dump());
        return std::make_unique<InprocBackend>();
    }
#ifdef WEIGHTSYNC_HAVE_CUDA
    if (name == "cuda_ipc") return makeCudaIpcBackend(CudaIpcOptions::fromJson(options));
#endif
    fail(Errc::kInvalidArgument, "unknown transport backend '{}' (known: {})", name,
         fmt::join(backendNames(), ", "));
}

}  // namespace weightsync::transport
