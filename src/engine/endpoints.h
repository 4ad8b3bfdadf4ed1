#pragma once
// Which transports an agent speaks. A receiver offers every backend that can reach its memory
// (CUDA memory: cuda_ipc, plus UCX when its build handles CUDA; host memory: UCX); a trainer
// picks one per peer: CUDA-IPC for GPU pairs on the same host, UCX otherwise (or the job's
// explicit choice).

#include "engine/job.h"
#include "engine/messages.h"
#include "transport/transport.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::engine {

/// hostname + boot id: equal only for processes of one machine (one OS boot).
std::string hostIdentity();

/// Backend options of the job for `backend`, with the agent's GPU filled in for cuda_ipc.
nlohmann::json backendOptions(const JobSpec &spec, const std::string &backend, int gpu);

/// The backends a receiver offers for memory of `kind` (spec.transport "auto" or one name).
std::vector<std::unique_ptr<transport::TransportBackend>> receiverBackends(
    const JobSpec &spec, transport::MemoryKind kind, int gpu);

/// The backend a trainer of `kind` memory on `host` uses to reach `peer`. Throws
/// Errc::kUnsupported naming the peer when nothing fits.
std::string chooseBackend(const JobSpec &spec, const MemoryRecord &peer, const std::string &host,
                          transport::MemoryKind kind, const std::string &peer_name);

}  // namespace weightsync::engine
