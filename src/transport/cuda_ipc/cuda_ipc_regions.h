#pragma once
// The pieces of the CUDA IPC backend that may outlive it: the copy streams (CudaIpcCore), a peer
// allocation mapped into this process (IpcMapping), and the LocalRegion / RemoteRegion types.
// A mapping is shared by every RemoteRegion imported from the same allocation; the last one to
// go closes it, after the core's streams have drained (no copy may target a closed mapping).

#include "platform/cuda/resources.h"
#include "transport/cuda_ipc/cuda_ipc_identity.h"
#include "transport/transport.h"

#include <spdlog/logger.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::transport::cuda_ipc {

/// The backend's GPU and copy streams.
struct CudaIpcCore {
    CudaIpcCore(int device, int streams);
    /// Waits for every stream; failures are logged, not thrown (used on teardown paths).
    void drain() noexcept;

    int device;
    std::vector<platform::Stream> streams;
    std::shared_ptr<spdlog::logger> log;
};

/// One peer allocation opened with cudaIpcOpenMemHandle (or, for a region of this very process,
/// its own address: a process cannot open its own handles).
class IpcMapping {
  public:
    IpcMapping(std::shared_ptr<CudaIpcCore> core, std::string peer, uint64_t generation,
               const IpcKey &key, uint64_t owner_base);
    ~IpcMapping();
    IpcMapping(const IpcMapping &) = delete;
    IpcMapping &operator=(const IpcMapping &) = delete;

    /// Drains the core's streams and unmaps; later writes through it fail with kPeerLost.
    void close() noexcept;
    [[nodiscard]] bool isOpen() const { return base_ != nullptr; }
    [[nodiscard]] std::byte *base() const { return base_; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] const std::string &peer() const { return peer_; }
    [[nodiscard]] uint64_t generation() const { return generation_; }
    [[nodiscard]] const CudaIpcCore *core() const { return core_.get(); }

  private:
    std::shared_ptr<CudaIpcCore> core_;
    std::string peer_;
    uint64_t generation_;
    std::byte *base_ = nullptr;
    size_t size_;
    bool imported_ = false;  // false: own memory, nothing to close
};

class CudaIpcLocalRegion final : public LocalRegion {
  public:
    CudaIpcLocalRegion(std::shared_ptr<CudaIpcCore> core, void *ptr, size_t length, int device,
                       uint64_t generation, IpcKey key);

    [[nodiscard]] void *data() const override { return ptr_; }
    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] RemoteDescriptor describe() const override;

    [[nodiscard]] const CudaIpcCore *core() const { return core_.get(); }
    [[nodiscard]] int device() const { return device_; }

  private:
    std::shared_ptr<CudaIpcCore> core_;
    void *ptr_;
    size_t length_;
    int device_;
    uint64_t generation_;
    std::string key_;
};

class CudaIpcRemoteRegion final : public RemoteRegion {
  public:
    CudaIpcRemoteRegion(std::shared_ptr<IpcMapping> mapping, size_t offset, size_t length)
        : mapping_(std::move(mapping)), offset_(offset), length_(length) {}

    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] const std::string &peer() const override { return mapping_->peer(); }

    [[nodiscard]] const IpcMapping &mapping() const { return *mapping_; }
    /// Start of the region in this process (valid while mapping().isOpen()).
    [[nodiscard]] std::byte *data() const { return mapping_->base() + offset_; }

  private:
    std::shared_ptr<IpcMapping> mapping_;
    size_t offset_;
    size_t length_;
};

}  // namespace weightsync::transport::cuda_ipc
