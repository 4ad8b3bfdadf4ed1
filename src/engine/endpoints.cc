#include "engine/endpoints.h"

#include "common/error.h"
#include "common/log.h"
#include "transport/registry.h"

#include <fmt/format.h>

#include <unistd.h>
#include <algorithm>
#include <fstream>

namespace weightsync::engine {

std::string hostIdentity() {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    std::string boot;
    std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
    return fmt::format("{}/{}", name, boot);
}

nlohmann::json backendOptions(const JobSpec &spec, const std::string &backend, int gpu) {
    nlohmann::json options =
        spec.transport_options.is_object() ? spec.transport_options : nlohmann::json::object();
    // The job's options are for its named transport; "auto" jobs keep UCX options under "ucx".
    if (spec.transport == "auto") {
        options = spec.transport_options.is_object() && spec.transport_options.contains(backend)
                      ? spec.transport_options.at(backend)
                      : nlohmann::json::object();
    } else if (spec.transport != backend) {
        options = nlohmann::json::object();
    }
    if (backend == "cuda_ipc" && gpu >= 0 && !options.contains("device")) options["device"] = gpu;
    return options;
}

std::vector<std::unique_ptr<transport::TransportBackend>> receiverBackends(
    const JobSpec &spec, transport::MemoryKind kind, int gpu) {
    std::vector<std::unique_ptr<transport::TransportBackend>> out;
    if (spec.transport != "auto") {
        out.push_back(
            transport::makeBackend(spec.transport, backendOptions(spec, spec.transport, gpu)));
        return out;
    }
    if (kind == transport::MemoryKind::kCuda) {
        out.push_back(transport::makeBackend("cuda_ipc", backendOptions(spec, "cuda_ipc", gpu)));
        auto ucx = transport::makeBackend("ucx", backendOptions(spec, "ucx", gpu));
        if (ucx->capabilities().cuda_memory) {
            out.push_back(std::move(ucx));
        } else {
            logger("inference")
                ->info("UCX here cannot register CUDA memory: offering cuda_ipc only");
        }
        return out;
    }
    out.push_back(transport::makeBackend("ucx", backendOptions(spec, "ucx", gpu)));
    return out;
}

std::string chooseBackend(const JobSpec &spec, const MemoryRecord &peer, const std::string &host,
                          transport::MemoryKind kind, const std::string &peer_name) {
    std::vector<std::string> offered;
    for (const Endpoint &e : peer.endpoints) offered.push_back(e.backend);
    const auto offers = [&](const std::string &b) {
        return std::find(offered.begin(), offered.end(), b) != offered.end();
    };
    if (spec.transport != "auto") {
        check(offers(spec.transport), Errc::kUnsupported,
              "inference rank {} does not offer transport '{}' (it offers: {})", peer_name,
              spec.transport, fmt::join(offered, ", "));
        return spec.transport;
    }
    if (kind == transport::MemoryKind::kCuda && peer.host == host && offers("cuda_ipc")) {
        return "cuda_ipc";
    }
    check(offers("ucx"), Errc::kUnsupported,
          "no transport reaches inference rank {}: it offers {} and is {} host", peer_name,
          fmt::join(offered, ", "), peer.host == host ? "on this" : "on another");
    return "ucx";
}

}  // namespace weightsync::engine
