#pragma once
// The window of posted-but-incomplete UCX requests. Requests are kept as handles and polled with
// ucp_request_check_status (no completion callbacks: freeing an in-flight request would suppress
// its callback). The caller holds the core's mutex.

#include "transport/ucx/ucx_endpoint.h"

#include <deque>
#include <memory>
#include <vector>

namespace weightsync::transport::ucx {

class UcxInflight {
  public:
    UcxInflight() = default;
    ~UcxInflight() { releaseAll(); }
    UcxInflight(const UcxInflight &) = delete;
    UcxInflight &operator=(const UcxInflight &) = delete;

    void add(void *request, std::shared_ptr<UcxEndpoint> peer, size_t bytes);
    [[nodiscard]] size_t count() const { return pending_.size(); }
    [[nodiscard]] size_t bytes() const { return bytes_; }
    [[nodiscard]] bool empty() const { return pending_.empty(); }

    /// Frees every completed request; a failed one records its status on its peer.
    size_t reap();
    /// The distinct peers that have requests outstanding.
    [[nodiscard]] std::vector<std::shared_ptr<UcxEndpoint>> peers() const;
    /// Frees all requests, complete or not (their completion is no longer observed).
    void releaseAll();

  private:
    struct Pending {
        void *request;
        std::shared_ptr<UcxEndpoint> peer;
        size_t bytes;
    };
    std::deque<Pending> pending_;
    size_t bytes_ = 0;
};

}  // namespace weightsync::transport::ucx
