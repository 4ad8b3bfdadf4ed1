#include "transport/registry.h"

#include "transport/inproc/inproc_backend.h"
#include "transport/ucx/ucx_backend.h"
#ifdef WEIGHTSYNC_HAVE_CUDA
#include "transport/cuda_ipc/cuda_ipc_backend.h"
#endif
#ifdef WEIGHTSYNC_HAVE_NCCL
#include "transport/nccl/nccl_backend.h"
#endif

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace weightsync::transport {

std::vector<std::string> backendNames() {
    std::vector<std::string> names{"ucx", "inproc"};
#ifdef WEIGHTSYNC_HAVE_CUDA
    names.emplace_back("cuda_ipc");
#endif
#ifdef WEIGHTSYNC_HAVE_NCCL
    names.emplace_back("nccl");
#endif
    return names;
}

void requireBuilt(const std::string &name) {
#ifndef WEIGHTSYNC_HAVE_CUDA
    check(name != "cuda_ipc", Errc::kUnsupported,
          "the cuda_ipc transport needs CUDA: this weightsync was built without it");
#endif
#ifndef WEIGHTSYNC_HAVE_NCCL
    check(name != "nccl", Errc::kUnsupported,
          "the nccl transport needs CUDA and NCCL: this weightsync was built without them "
          "(configure with -DWEIGHTSYNC_CUDA=ON where nccl.h and libnccl are found)");
#endif
    (void)name;
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
#ifdef WEIGHTSYNC_HAVE_NCCL
    if (name == "nccl") return makeNcclBackend(NcclOptions::fromJson(options));
#endif
    requireBuilt(name);
    fail(Errc::kInvalidArgument, "unknown transport backend '{}' (known: {})", name,
         fmt::join(backendNames(), ", "));
}

}  // namespace weightsync::transport
