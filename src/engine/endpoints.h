#pragma once
// Which transports an agent speaks, as transport/selector.h decides: a receiver offers every
// backend that can reach its memory; a trainer picks one per peer. Backends come from a
// transport::BackendFactory (the registry unless a test injects another).

#include "engine/job.h"
#include "engine/messages.h"
#include "transport/registry.h"
#include "transport/transport.h"

#include <memory>
#include <string>
#include <vector>

namespace weightsync::engine {

/// Backend options of the job for `backend`, with the agent's GPU filled in for cuda_ipc.
nlohmann::json backendOptions(const JobSpec &spec, const std::string &backend, int gpu);

/// The backends a receiver offers for memory of `kind` on `gpu`, made by `factory`.
std::vector<std::unique_ptr<transport::TransportBackend>> receiverBackends(
    const JobSpec &spec, transport::MemoryKind kind, int gpu,
    const transport::BackendFactory &factory);

/// The backend a trainer of `kind` memory on `host` (hostIdentity()) uses to reach `peer`.
/// Throws Errc::kUnsupported naming the peer when nothing fits.
std::string chooseBackend(const JobSpec &spec, const MemoryRecord &peer, const std::string &host,
                          transport::MemoryKind kind, const std::string &peer_name);

}  // namespace weightsync::engine
