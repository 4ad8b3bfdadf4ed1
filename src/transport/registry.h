#pragma once
// The compile-time registry of data-plane backends.

#include "transport/transport.h"

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::transport {

/// Names makeBackend accepts: "ucx", "inproc", "cuda_ipc" in builds with CUDA, and "nccl" in
/// builds with CUDA and NCCL (elsewhere "nccl" is Errc::kUnsupported, saying what it needs).
std::vector<std::string> backendNames();

/// Throws Errc::kUnsupported, saying what the build lacks, for a known backend this build
/// cannot make ("cuda_ipc" without CUDA, "nccl" without CUDA and NCCL); no-op otherwise.
void requireBuilt(const std::string &name);

/// Creates a backend by name. `options` is that backend's option object (null = defaults); for
/// "ucx" see UcxOptions::fromJson, "inproc" takes none. Unknown names or options ->
/// Error(kInvalidArgument).
std::unique_ptr<TransportBackend> makeBackend(const std::string &name,
                                              const nlohmann::json &options);

/// Where an agent gets its backends: makeBackend by default; tests inject others (e.g. the
/// registry's backends wrapped in a FaultInjectingBackend).
using BackendFactory = std::function<std::unique_ptr<TransportBackend>(
    const std::string &name, const nlohmann::json &options)>;

}  // namespace weightsync::transport
