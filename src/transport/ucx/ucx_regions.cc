#include "transport/ucx/ucx_regions.h"

#include "common/error.h"
#include "common/log.h"
#include "transport/ucx/ucx_shm.h"

namespace weightsync::transport::ucx {
namespace {

/// The local address of the peer's [address, address+length), if the rkey maps it into this
/// process (shared memory on this host) contiguously; else nullptr.
char *mappedRange(ucp_rkey_h rkey, uint64_t address, size_t length) {
    void *first = nullptr;
    void *last = nullptr;
    if (ucp_rkey_ptr(rkey, address, &first) != UCS_OK ||
        ucp_rkey_ptr(rkey, address + length - 1, &last) != UCS_OK) {
        return nullptr;
    }
    auto *begin = static_cast<char *>(first);
    // One contiguous mapping, and a shared one: never write through anything less.
    if (static_cast<char *>(last) != begin + length - 1 || !isSharedMapping(begin, length)) {
        return nullptr;
    }
    return begin;
}

}  // namespace

UcxLocalRegion::UcxLocalRegion(std::shared_ptr<UcxCore> core, void *ptr, size_t length,
                               MemoryKind kind, int device, uint64_t generation)
    : core_(std::move(core)),
      ptr_(ptr),
      length_(length),
      kind_(kind),
      device_(device),
      generation_(generation) {
    const ucs_memory_type_t type =
        kind == MemoryKind::kCuda ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
    std::lock_guard lock(core_->mutex);
    memory_ = std::make_unique<UcxMemory>(core_->context.get(), ptr, length, type);
}

UcxLocalRegion::UcxLocalRegion(std::shared_ptr<UcxCore> core, std::unique_ptr<UcxMemory> memory,
                               size_t length, uint64_t generation)
    : core_(std::move(core)),
      memory_(std::move(memory)),
      ptr_(memory_->address()),
      length_(length),
      kind_(MemoryKind::kHost),
      device_(-1),
      generation_(generation) {}

UcxLocalRegion::~UcxLocalRegion() {
    std::lock_guard lock(core_->mutex);
    memory_.reset();
}

RemoteDescriptor UcxLocalRegion::describe() const {
    RemoteDescriptor d;
    d.backend = "ucx";
    d.address = reinterpret_cast<uintptr_t>(ptr_);
    d.length = length_;
    d.kind = kind_;
    d.device = device_;
    d.generation = generation_;
    d.key = memory_->packedKey();
    return d;
}

UcxRemoteRegion::UcxRemoteRegion(std::shared_ptr<UcxEndpoint> endpoint,
                                 const RemoteDescriptor &descriptor, bool prefault_mapping)
    : endpoint_(std::move(endpoint)), address_(descriptor.address), length_(descriptor.length) {
    check(endpoint_->usable(), Errc::kPeerLost, "ucx: peer {} is not reachable (failed earlier)",
          endpoint_->peer());
    rkey_ = std::make_unique<UcxRkey>(endpoint_->handle(), descriptor.key, endpoint_->peer());
    if (descriptor.kind == MemoryKind::kHost) {
        direct_ = mappedRange(rkey_->get(), address_, length_);
        // The first write to each page would otherwise fault in this process: take it now. If
        // that fails, leave the writes to UCX.
        if (direct_ != nullptr && prefault_mapping && !prefault(direct_, length_))
            direct_ = nullptr;
        logger("ucx")->debug("imported {} bytes of peer {}{}", length_, endpoint_->peer(),
                             direct_ != nullptr ? " (shared memory, mapped here)" : "");
    }
}

UcxRemoteRegion::~UcxRemoteRegion() {
    std::lock_guard lock(endpoint_->core()->mutex);
    rkey_.reset();
}

}  // namespace weightsync::transport::ucx
