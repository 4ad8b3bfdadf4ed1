#pragma once
// RAII ucp_context_h. Its configuration is read per context (ucp_config_read); our options are
// applied with ucp_config_modify only for settings the user did not set as UCX_* variables.

#include "transport/ucx/ucx_backend.h"

#include <ucp/api/ucp.h>

#include <string>

namespace weightsync::transport::ucx {

class UcxContext {
  public:
    explicit UcxContext(const UcxOptions &options);
    ~UcxContext();
    UcxContext(const UcxContext &) = delete;
    UcxContext &operator=(const UcxContext &) = delete;

    [[nodiscard]] ucp_context_h get() const { return context_; }
    [[nodiscard]] bool cudaMemory() const { return cuda_memory_; }
    [[nodiscard]] bool wakeup() const { return wakeup_; }

    /// "UCX 1.13.1", for messages.
    static std::string versionString();

  private:
    ucp_context_h context_ = nullptr;
    bool cuda_memory_ = false;
    bool wakeup_ = false;
};

}  // namespace weightsync::transport::ucx
