#pragma once
// RAII registrations: UcxMemory (ucp_mem_map, of the caller's memory or of memory UCX allocates,
// plus the packed rkey a peer imports) and UcxRkey (an unpacked remote key). The caller holds the
// core's mutex around construction and destruction.

#include <ucp/api/ucp.h>

#include <cstddef>
#include <memory>
#include <string>

namespace weightsync::transport::ucx {

class UcxMemory {
  public:
    /// Registers the caller's [ptr, ptr+length).
    UcxMemory(ucp_context_h context, void *ptr, size_t length, ucs_memory_type_t type);
    /// Allocates `length` bytes of host memory with ucp_mem_map(UCP_MEM_MAP_ALLOCATE). UCX picks
    /// the method by its ALLOC_PRIO setting (default md:sysv, md:posix, huge, thp, md:*, mmap,
    /// heap): a shared-memory segment whenever a sysv or posix transport is loaded.
    static std::unique_ptr<UcxMemory> allocate(ucp_context_h context, size_t length);
    /// Deregisters; frees the memory if UCX allocated it.
    ~UcxMemory();
    UcxMemory(const UcxMemory &) = delete;
    UcxMemory &operator=(const UcxMemory &) = delete;

    [[nodiscard]] ucp_mem_h handle() const { return memh_; }
    [[nodiscard]] const std::string &packedKey() const { return packed_key_; }
    /// The mapped range (an allocation may be rounded up to whole pages).
    [[nodiscard]] void *address() const { return address_; }
    [[nodiscard]] size_t length() const { return length_; }

  private:
    UcxMemory(ucp_context_h context, const ucp_mem_map_params_t &params);

    ucp_context_h context_;
    ucp_mem_h memh_ = nullptr;
    std::string packed_key_;
    void *address_ = nullptr;
    size_t length_ = 0;
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
