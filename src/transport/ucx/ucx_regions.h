#pragma once
// The UCX LocalRegion (a ucp_mem_map registration, of the caller's memory or of memory UCX
// allocated) and RemoteRegion (a peer's unpacked rkey, plus the local mapping of the peer's
// segment when the peer's memory is shared memory on this host). Both keep the core alive and
// take its mutex when they release their UCX handles, so they may outlive the backend that made
// them.

#include "transport/transport.h"
#include "transport/ucx/ucx_endpoint.h"
#include "transport/ucx/ucx_memory.h"

#include <memory>

namespace weightsync::transport::ucx {

class UcxLocalRegion final : public LocalRegion {
  public:
    /// Registers the caller's memory.
    UcxLocalRegion(std::shared_ptr<UcxCore> core, void *ptr, size_t length, MemoryKind kind,
                   int device, uint64_t generation);
    /// Takes over host memory UCX allocated (UcxMemory::allocate); `length` <= memory->length().
    UcxLocalRegion(std::shared_ptr<UcxCore> core, std::unique_ptr<UcxMemory> memory, size_t length,
                   uint64_t generation);
    ~UcxLocalRegion() override;

    [[nodiscard]] void *data() const override { return ptr_; }
    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] RemoteDescriptor describe() const override;

    [[nodiscard]] const UcxCore *core() const { return core_.get(); }
    [[nodiscard]] ucp_mem_h memh() const { return memory_->handle(); }

  private:
    std::shared_ptr<UcxCore> core_;
    std::unique_ptr<UcxMemory> memory_;
    void *ptr_;
    size_t length_;
    MemoryKind kind_;
    int device_;
    uint64_t generation_;
};

class UcxRemoteRegion final : public RemoteRegion {
  public:
    /// Unpacks the key; when the peer's memory is a shared-memory segment this process can map
    /// (ucp_rkey_ptr), records the local mapping (see direct()) and, with `prefault_mapping`, maps
    /// all its pages now.
    UcxRemoteRegion(std::shared_ptr<UcxEndpoint> endpoint, const RemoteDescriptor &descriptor,
                    bool prefault_mapping);
    ~UcxRemoteRegion() override;

    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] const std::string &peer() const override { return endpoint_->peer(); }

    [[nodiscard]] const std::shared_ptr<UcxEndpoint> &endpoint() const { return endpoint_; }
    [[nodiscard]] ucp_rkey_h rkey() const { return rkey_->get(); }
    [[nodiscard]] uint64_t address() const { return address_; }
    /// This process's mapping of the whole region (valid while this object lives), or nullptr
    /// when the region is reachable only through UCP operations.
    [[nodiscard]] char *direct() const { return direct_; }

  private:
    std::shared_ptr<UcxEndpoint> endpoint_;
    std::unique_ptr<UcxRkey> rkey_;
    uint64_t address_;
    size_t length_;
    char *direct_ = nullptr;
};

}  // namespace weightsync::transport::ucx
