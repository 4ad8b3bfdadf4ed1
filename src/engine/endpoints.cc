#include "engine/endpoints.h"

#include "common/log.h"
#include "transport/selector.h"

namespace weightsync::engine {

nlohmann::json backendOptions(const JobSpec &spec, const std::string &backend, int gpu) {
    nlohmann::json options =
        spec.transport_options.is_object() ? spec.transport_options : nlohmann::json::object();
    // The job's options are for its named transport; "auto" jobs keep each one's under its name.
    if (spec.transport == transport::TransportChoice::kAuto) {
        options = spec.transport_options.is_object() && spec.transport_options.contains(backend)
                      ? spec.transport_options.at(backend)
                      : nlohmann::json::object();
    } else if (transport::choiceName(spec.transport) != backend) {
        options = nlohmann::json::object();
    }
    if ((backend == "cuda_ipc" || backend == "nccl") && gpu >= 0 && !options.contains("device")) {
        options["device"] = gpu;
    }
    return options;
}

std::vector<std::unique_ptr<transport::TransportBackend>> receiverBackends(
    const JobSpec &spec, transport::MemoryKind kind, int gpu,
    const transport::BackendFactory &factory) {
    std::vector<std::unique_ptr<transport::TransportBackend>> out;
    for (const std::string &name : transport::receiverCandidates(spec.transport, kind)) {
        auto backend = factory(name, backendOptions(spec, name, gpu));
        if (transport::keepOffer(spec.transport, backend->capabilities(), kind)) {
            out.push_back(std::move(backend));
        } else {
            logger("inference")->info("{} here cannot register this memory: not offering it", name);
        }
    }
    return out;
}

std::string chooseBackend(const JobSpec &spec, const MemoryRecord &peer, const std::string &host,
                          transport::MemoryKind kind, const std::string &peer_name) {
    transport::PeerOffer offer;
    for (const Endpoint &e : peer.endpoints) {
        offer.backends.push_back(e.backend);
        if (!e.regions.empty()) offer.kind = e.regions.front().kind;
    }
    offer.same_host = peer.host == host;
    return transport::selectBackend(spec.transport, kind, offer, peer_name);
}

}  // namespace weightsync::engine
