#pragma once
// One non-blocking NCCL communicator (RAII: aborted on destruction, so that no process waits on
// its peer to go away), and NCCL results as weightsync errors. Internal to the backend.

#include "common/error.h"

#include <nccl.h>

#include <chrono>
#include <string>
#include <string_view>

namespace weightsync::transport::nccl {

using Clock = std::chrono::steady_clock;

/// The code an NCCL result maps to: kPeerLost for ncclRemoteError, kUnsupported for an invalid
/// usage (e.g. two ranks of one communicator on one GPU), kTransport for everything else.
Errc ncclErrc(ncclResult_t result);

/// "<result> (<NCCL's last error message>)".
std::string ncclText(ncclResult_t result, ncclComm_t comm);

class Comm {
  public:
    /// Starts joining the 2-rank communicator of `id` as `rank` on the current device; await()
    /// tells when it is formed. Throws the NCCL error (naming `peer`) when it cannot start.
    Comm(const ncclUniqueId &id, int rank, std::string peer);
    ~Comm();
    Comm(const Comm &) = delete;
    Comm &operator=(const Comm &) = delete;

    [[nodiscard]] ncclComm_t get() const { return comm_; }
    [[nodiscard]] const std::string &peer() const { return peer_; }
    [[nodiscard]] bool aborted() const { return aborted_; }
    /// ncclSuccess, ncclInProgress (an operation is still being handed to the GPU), or the
    /// communicator's asynchronous error.
    [[nodiscard]] ncclResult_t state() const;
    /// Waits until the communicator is out of ncclInProgress. On an error, or past `deadline`,
    /// aborts the communicator and throws (kTimeout past the deadline), naming `what`.
    void await(Clock::time_point deadline, std::string_view what);
    /// ncclCommAbort: stops the communicator's kernels and frees it; idempotent, never throws.
    void abort() noexcept;

  private:
    ncclComm_t comm_ = nullptr;
    std::string peer_;
    bool aborted_ = false;
};

}  // namespace weightsync::transport::nccl
