#include "transport/ucx/ucx_endpoint.h"

#include "common/log.h"
#include "transport/ucx/ucx_status.h"

#include <chrono>

namespace weightsync::transport::ucx {
namespace {
constexpr std::chrono::seconds kCloseTimeout{1};
}  // namespace

UcxEndpoint::UcxEndpoint(std::shared_ptr<UcxCore> core, std::string peer,
                         std::string worker_address)
    : core_(std::move(core)), peer_(std::move(peer)), worker_address_(std::move(worker_address)) {
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = reinterpret_cast<const ucp_address_t *>(worker_address_.data());
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &UcxEndpoint::onError;
    params.err_handler.arg = this;
    worker_ = core_->worker.get();
    const ucs_status_t status = ucp_ep_create(worker_->get(), &params, &ep_);
    if (status != UCS_OK) {
        fail(errcFor(status), "ucx: cannot connect to peer {}: {}", peer_,
             ucs_status_string(status));
    }
    logger("ucx")->debug("connected to peer {}", peer_);
}

UcxEndpoint::~UcxEndpoint() {
    std::lock_guard lock(core_->mutex);
    // Forced: no confirmation from the peer is needed (it may be gone), and anything still
    // outstanding was flushed or deliberately cancelled by the backend before.
    if (ep_ != nullptr) startClose(true);
    const auto deadline = std::chrono::steady_clock::now() + kCloseTimeout;
    while (close_request_ != nullptr) {
        worker_->progress();  // the worker the endpoint was made on, even if since renewed
        if (ucp_request_check_status(close_request_) != UCS_INPROGRESS) {
            ucp_request_free(close_request_);
            close_request_ = nullptr;
        } else if (std::chrono::steady_clock::now() > deadline) {
            logger("ucx")->warn("closing the endpoint to peer {} did not finish in {} s", peer_,
                                kCloseTimeout.count());
            ucp_request_free(close_request_);  // UCX releases it when the close completes
            close_request_ = nullptr;
        }
    }
}

void UcxEndpoint::onError(void *arg, ucp_ep_h /*ep*/, ucs_status_t status) {
    static_cast<UcxEndpoint *>(arg)->recordFailure(status, "endpoint error");
}

void UcxEndpoint::recordFailure(ucs_status_t status, const char *where) {
    ucs_status_t expected = UCS_OK;
    if (status == UCS_OK || !failure_.compare_exchange_strong(expected, status)) return;
    logger("ucx")->warn("peer {}: {} ({})", peer_, ucs_status_string(status), where);
}

void UcxEndpoint::closeIfFailed() {
    if (failure() != UCS_OK && ep_ != nullptr) startClose(true);
}

void UcxEndpoint::retire() {
    retired_ = true;
    if (ep_ != nullptr) startClose(true);
}

void UcxEndpoint::startClose(bool force) {
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void *request = ucp_ep_close_nbx(ep_, &param);
    ep_ = nullptr;
    if (UCS_PTR_IS_PTR(request)) {
        if (close_request_ != nullptr) ucp_request_free(close_request_);
        close_request_ = request;
    }
}

}  // namespace weightsync::transport::ucx
