#include "transport/ucx/ucx_regions.h"

#include "common/error.h"

namespace weightsync::transport::ucx {

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
                                 const RemoteDescriptor &descriptor)
    : endpoint_(std::move(endpoint)), address_(descriptor.address), length_(descriptor.length) {
    check(endpoint_->usable(), Errc::kPeerLost, "ucx: peer {} is not reachable (failed earlier)",
          endpoint_->peer());
    rkey_ = std::make_unique<UcxRkey>(endpoint_->handle(), descriptor.key, endpoint_->peer());
}

UcxRemoteRegion::~UcxRemoteRegion() {
    std::lock_guard lock(endpoint_->core()->mutex);
    rkey_.reset();
}

}  // namespace weightsync::transport::ucx
