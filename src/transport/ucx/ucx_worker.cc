#include "transport/ucx/ucx_worker.h"

#include "transport/ucx/ucx_status.h"

namespace weightsync::transport::ucx {

UcxWorker::UcxWorker(const UcxContext &context, bool wakeup) {
    ucp_worker_params_t params{};
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    checkStatus(ucp_worker_create(context.get(), &params, &worker_), Errc::kTransport,
                "ucp_worker_create");
    try {
        if (wakeup) {
            checkStatus(ucp_worker_get_efd(worker_, &event_fd_), Errc::kTransport,
                        "ucp_worker_get_efd");
        }
        ucp_address_t *address = nullptr;
        size_t length = 0;
        checkStatus(ucp_worker_get_address(worker_, &address, &length), Errc::kTransport,
                    "ucp_worker_get_address");
        address_.assign(reinterpret_cast<const char *>(address), length);
        ucp_worker_release_address(worker_, address);
    } catch (...) {
        ucp_worker_destroy(worker_);
        throw;
    }
}

UcxWorker::~UcxWorker() {
    ucp_worker_destroy(worker_);
}

void UcxWorker::signal() {
    if (event_fd_ >= 0) ucp_worker_signal(worker_);
}

}  // namespace weightsync::transport::ucx
