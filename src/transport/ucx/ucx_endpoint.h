#pragma once
// RAII ucp_ep_h to one named peer, created in UCP_ERR_HANDLING_MODE_PEER. The error handler
// records the first failure against the peer's name; the owner then closes the endpoint with
// UCP_EP_CLOSE_FLAG_FORCE, which completes the endpoint's outstanding requests with an error.
// Every method except the destructor expects the caller to hold the core's mutex.

#include "transport/ucx/ucx_worker.h"

#include <ucp/api/ucp.h>

#include <atomic>
#include <memory>
#include <string>

namespace weightsync::transport::ucx {

class UcxEndpoint {
  public:
    UcxEndpoint(std::shared_ptr<UcxCore> core, std::string peer, std::string worker_address);
    /// Force-closes the endpoint, progressing the worker for at most a second.
    ~UcxEndpoint();
    UcxEndpoint(const UcxEndpoint &) = delete;
    UcxEndpoint &operator=(const UcxEndpoint &) = delete;

    [[nodiscard]] const std::string &peer() const { return peer_; }
    [[nodiscard]] const std::string &workerAddress() const { return worker_address_; }
    [[nodiscard]] const std::shared_ptr<UcxCore> &core() const { return core_; }
    /// nullptr once the endpoint is closing.
    [[nodiscard]] ucp_ep_h handle() const { return ep_; }
    [[nodiscard]] ucs_status_t failure() const { return failure_.load(); }
    [[nodiscard]] bool retired() const { return retired_; }
    [[nodiscard]] bool usable() const { return ep_ != nullptr && failure() == UCS_OK && !retired_; }

    /// Records the first failure seen on this peer (error handler, failed request, timeout).
    void recordFailure(ucs_status_t status, const char *where);
    /// Starts a forced close if the endpoint failed and is still open.
    void closeIfFailed();
    /// Marks the endpoint as replaced by a reconnect and force-closes it.
    void retire();

    /// Whether writes were posted to this peer since the last flush.
    [[nodiscard]] bool dirty() const { return dirty_; }
    void setDirty(bool dirty) { dirty_ = dirty; }

  private:
    static void onError(void *arg, ucp_ep_h ep, ucs_status_t status);
    void startClose(bool force);

    std::shared_ptr<UcxCore> core_;
    UcxWorker *worker_ = nullptr;  // the one ep_ was made on (owned by core_, kept if renewed)
    std::string peer_;
    std::string worker_address_;
    ucp_ep_h ep_ = nullptr;
    void *close_request_ = nullptr;
    std::atomic<ucs_status_t> failure_{UCS_OK};  // atomic: the error handler may run anywhere
    bool retired_ = false;
    bool dirty_ = false;
};

}  // namespace weightsync::transport::ucx
