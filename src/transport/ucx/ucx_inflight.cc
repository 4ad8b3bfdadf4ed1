#include "transport/ucx/ucx_inflight.h"

#include <algorithm>

namespace weightsync::transport::ucx {

void UcxInflight::add(void *request, std::shared_ptr<UcxEndpoint> peer, size_t bytes) {
    pending_.push_back(Pending{request, std::move(peer), bytes});
    bytes_ += bytes;
}

size_t UcxInflight::reap() {
    size_t reaped = 0;
    for (auto it = pending_.begin(); it != pending_.end();) {
        const ucs_status_t status = ucp_request_check_status(it->request);
        if (status == UCS_INPROGRESS) {
            ++it;
            continue;
        }
        if (status != UCS_OK) it->peer->recordFailure(status, "write failed");
        ucp_request_free(it->request);
        bytes_ -= it->bytes;
        it = pending_.erase(it);
        ++reaped;
    }
    return reaped;
}

std::vector<std::shared_ptr<UcxEndpoint>> UcxInflight::peers() const {
    std::vector<std::shared_ptr<UcxEndpoint>> out;
    for (const auto &p : pending_) {
        if (std::find(out.begin(), out.end(), p.peer) == out.end()) out.push_back(p.peer);
    }
    return out;
}

void UcxInflight::releaseAll() {
    for (const auto &p : pending_) ucp_request_free(p.request);
    pending_.clear();
    bytes_ = 0;
}

}  // namespace weightsync::transport::ucx
