#pragma once
// RAII ucp_worker_h, and UcxCore: the context, the worker and the one mutex that serializes
// every UCP call made through them (the worker is created UCS_THREAD_MODE_SERIALIZED).

#include "transport/ucx/ucx_context.h"

#include <ucp/api/ucp.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace weightsync::transport::ucx {

class UcxWorker {
  public:
    UcxWorker(const UcxContext &context, bool wakeup);
    ~UcxWorker();
    UcxWorker(const UcxWorker &) = delete;
    UcxWorker &operator=(const UcxWorker &) = delete;

    [[nodiscard]] ucp_worker_h get() const { return worker_; }
    /// The packed worker address another worker connects to.
    [[nodiscard]] const std::string &address() const { return address_; }
    /// The event fd (UCP_FEATURE_WAKEUP), or -1 without wakeup.
    [[nodiscard]] int eventFd() const { return event_fd_; }

    unsigned progress() { return ucp_worker_progress(worker_); }
    /// UCS_OK when armed (safe to sleep on eventFd), UCS_ERR_BUSY when events are pending.
    ucs_status_t arm() { return ucp_worker_arm(worker_); }
    /// Wakes a thread sleeping on eventFd.
    void signal();

  private:
    ucp_worker_h worker_ = nullptr;
    int event_fd_ = -1;
    std::string address_;
};

/// Owned through shared_ptr by the backend and by every region and endpoint, so UCX objects are
/// always released before the worker and the context, whatever order the owners die in.
struct UcxCore {
    explicit UcxCore(const UcxOptions &options)
        : context(options),
          wakeup(options.wakeup),
          worker(std::make_unique<UcxWorker>(context, wakeup)) {}

    /// Replaces the worker by a fresh one (a new receive queue and a new address). The old one is
    /// kept, never progressed by the backend again, until the core dies: endpoints and rkeys
    /// made on it may outlive the swap.
    void renewWorker() {
        retired_workers.push_back(std::move(worker));
        worker = std::make_unique<UcxWorker>(context, wakeup);
    }

    std::recursive_mutex mutex;  // held around every UCP call on this context/worker
    UcxContext context;
    bool wakeup;
    std::unique_ptr<UcxWorker> worker;
    std::vector<std::unique_ptr<UcxWorker>> retired_workers;  // destroyed before the context
};

}  // namespace weightsync::transport::ucx
