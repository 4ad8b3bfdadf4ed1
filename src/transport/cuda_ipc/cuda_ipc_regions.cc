#include "transport/cuda_ipc/cuda_ipc_regions.h"

#include "common/log.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"

#include <unistd.h>

namespace weightsync::transport::cuda_ipc {

CudaIpcCore::CudaIpcCore(int device_ordinal, int stream_count)
    : device(device_ordinal), log(logger("cuda_ipc")) {
    streams.reserve(static_cast<size_t>(stream_count));
    for (int i = 0; i < stream_count; ++i) streams.emplace_back(device);
}

void CudaIpcCore::drain() noexcept {
    for (const platform::Stream &stream : streams) {
        const cudaError_t err = cudaStreamSynchronize(stream.get());
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            log->warn("draining a copy stream on GPU {}: {}", device, platform::cudaErrorText(err));
        }
    }
}

IpcMapping::IpcMapping(std::shared_ptr<CudaIpcCore> core, std::string peer, uint64_t generation,
                       const IpcKey &key, uint64_t owner_base)
    : core_(std::move(core)),
      peer_(std::move(peer)),
      generation_(generation),
      size_(key.base_size) {
    if (key.pid == ::getpid()) {
        // owner_base is the allocation's device address, carried as an integer.
        base_ = reinterpret_cast<std::byte *>(owner_base);  // NOLINT(performance-no-int-to-ptr)
        return;
    }
    platform::DeviceGuard guard(core_->device);
    void *ptr = nullptr;
    platform::cudaCheck(cudaIpcOpenMemHandle(&ptr, key.handle, cudaIpcMemLazyEnablePeerAccess),
                        "cuda_ipc: cannot map the {}-byte allocation of peer {} ({}) on GPU {}",
                        key.base_size, peer_, platform::uuidString(key.uuid), core_->device);
    base_ = static_cast<std::byte *>(ptr);
    imported_ = true;
    core_->log->debug("mapped {} bytes of peer {} (generation {}) at {}", size_, peer_, generation_,
                      ptr);
}

IpcMapping::~IpcMapping() {
    close();
}

void IpcMapping::close() noexcept {
    if (base_ == nullptr) return;
    if (imported_) {
        core_->drain();
        // Close in the context that opened it (no DeviceGuard: it may throw, this may not).
        int previous = -1;
        const bool switched = cudaGetDevice(&previous) == cudaSuccess &&
                              previous != core_->device &&
                              cudaSetDevice(core_->device) == cudaSuccess;
        const cudaError_t err = cudaIpcCloseMemHandle(base_);
        if (switched) (void)cudaSetDevice(previous);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            core_->log->warn("cudaIpcCloseMemHandle for peer {}: {}", peer_,
                             platform::cudaErrorText(err));
        } else {
            core_->log->debug("unmapped {} bytes of peer {} (generation {})", size_, peer_,
                              generation_);
        }
    }
    base_ = nullptr;
}

CudaIpcLocalRegion::CudaIpcLocalRegion(std::shared_ptr<CudaIpcCore> core, void *ptr, size_t length,
                                       int device, uint64_t generation, IpcKey key)
    : core_(std::move(core)),
      ptr_(ptr),
      length_(length),
      device_(device),
      generation_(generation),
      key_(key.pack()) {}

RemoteDescriptor CudaIpcLocalRegion::describe() const {
    RemoteDescriptor d;
    d.backend = "cuda_ipc";
    d.address = reinterpret_cast<uintptr_t>(ptr_);
    d.length = length_;
    d.kind = MemoryKind::kCuda;
    d.device = device_;
    d.generation = generation_;
    d.key = key_;
    return d;
}

}  // namespace weightsync::transport::cuda_ipc
