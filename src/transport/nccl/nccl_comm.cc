#include "transport/nccl/nccl_comm.h"

#include "common/log.h"

#include <fmt/format.h>

#include <thread>
#include <utility>

namespace weightsync::transport::nccl {

Errc ncclErrc(ncclResult_t result) {
    switch (result) {
        case ncclRemoteError: return Errc::kPeerLost;
        case ncclInvalidUsage:
        case ncclInvalidArgument: return Errc::kUnsupported;
        default: return Errc::kTransport;
    }
}

std::string ncclText(ncclResult_t result, ncclComm_t comm) {
    const char *last = ncclGetLastError(comm);
    std::string text = ncclGetErrorString(result);
    if (last != nullptr && *last != '\0') text += fmt::format(" ({})", last);
    return text;
}

Comm::Comm(const ncclUniqueId &id, int rank, std::string peer) : peer_(std::move(peer)) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // every call returns at once; await() polls with a deadline
    ncclUniqueId copy = id;
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, 2, copy, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        const std::string text = ncclText(r, comm_);
        abort();
        fail(ncclErrc(r), "nccl: cannot start the communicator with peer {}: {}", peer_, text);
    }
}

Comm::~Comm() {
    abort();
}

ncclResult_t Comm::state() const {
    if (aborted_ || comm_ == nullptr) return ncclInvalidUsage;
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    return r != ncclSuccess ? r : async;
}

void Comm::await(Clock::time_point deadline, std::string_view what) {
    check(!aborted_, Errc::kPeerLost, "nccl: {} with peer {}: its communicator was aborted", what,
          peer_);
    for (;;) {
        const ncclResult_t s = state();
        if (s == ncclSuccess) return;
        if (s != ncclInProgress) {
            const std::string text = ncclText(s, comm_);
            abort();
            fail(ncclErrc(s), "nccl: {} with peer {} failed: {}", what, peer_, text);
        }
        if (Clock::now() >= deadline) {
            abort();
            fail(Errc::kTimeout,
                 "nccl: {} with peer {} made no progress before its deadline; the communicator "
                 "was aborted",
                 what, peer_);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

void Comm::abort() noexcept {
    if (aborted_ || comm_ == nullptr) {
        aborted_ = true;
        return;
    }
    aborted_ = true;
    const ncclResult_t r = ncclCommAbort(std::exchange(comm_, nullptr));
    if (r != ncclSuccess && r != ncclInProgress) {
        logger("nccl")->warn("ncclCommAbort (peer {}): {}", peer_, ncclGetErrorString(r));
    }
}

}  // namespace weightsync::transport::nccl
