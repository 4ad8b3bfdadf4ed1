#pragma once
// RAII registrations: UcxMemory (ucp_mem_map + the packed rkey a peer imports) and UcxRkey
// (an unpacked remote key). The caller holds the core's mutex around construction and
// destruction.

#include <ucp/api/ucp.h>

#include <cstddef>
#include <string>

namespace weightsync::transport::ucx {

class UcxMemory {
  public:
    UcxMemory(ucp_context_h context, void *ptr, size_t length, ucs_memory_type_t type);
    ~UcxMemory();
    UcxMemory(const UcxMemory &) = delete;
    UcxMemory &operator=(const UcxMemory &) = delete;

    [[nodiscard]] ucp_mem_h handle() const { return memh_; }
    [[nodiscard]] const std::string &packedKey() const { return packed_key_; }

  private:
    ucp_context_h context_;
    ucp_mem_h memh_ = nullptr;
    std::string packed_key_;
};

class UcxRkey {
  public:
    /// Unpacks `packed` for use on `ep`; kInvalidArgument when UCX rejects the blob.
    UcxRkey(ucp_ep_h ep, const std::string &packed, const std::string &peer);
    ~UcxRkey();
    UcxRkey(const UcxRkey &) = delete;
    UcxRkey &operator=(const UcxRkey &) = delete;

    [[nodiscard]] ucp_rkey_h get() const { return rkey_; }

  private:
    ucp_rkey_h rkey_ = nullptr;
};

}  // namespace weightsync::transport::ucx
