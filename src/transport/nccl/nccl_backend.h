#pragma once
// The NCCL backend: two-sided transfers between GPUs (same host over NVLink/PCIe, or across hosts
// over NCCL's network transports). Each writer and receiver form their own 2-rank communicator
// (writer rank 0, receiver rank 1) from a unique id the writer makes (makePairToken) and the
// caller hands over, so that no process needs two ranks of one communicator on its GPU and
// the job never touches the caller's torch.distributed groups. Writes are ncclSend, receives
// ncclRecv, each pair on its own stream; submit() starts what was posted since the last submit
// as one ncclGroupStart/End. Communicators are non-blocking: every wait has a deadline, and a
// pair that fails or times out is aborted (ncclCommAbort) so that nothing hangs; it is not formed
// again (later writes to it fail with Errc::kPeerLost). This header carries no NCCL or CUDA type.

#include "transport/transport.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <memory>

namespace weightsync::transport {

struct NcclOptions {
    int device = -1;  // GPU of this process's memory; -1 = the current device when created
    /// Bound on handing a batch to NCCL (ncclGroupEnd of non-blocking communicators); waits for
    /// the transfers themselves are bounded by flush()'s timeout.
    std::chrono::milliseconds post_timeout{60'000};

    /// Reads {"device", "post_timeout_ms"}; unknown keys or bad values -> kInvalidArgument.
    static NcclOptions fromJson(const nlohmann::json &json);
};

/// Creates an NCCL backend. Throws kUnsupported when no CUDA device is visible.
std::unique_ptr<TransportBackend> makeNcclBackend(const NcclOptions &options);

}  // namespace weightsync::transport
