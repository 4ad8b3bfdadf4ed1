#pragma once
// CudaIpcBackend: TransportBackend over CUDA IPC (same host, GPU memory only).
//
// Writes are cudaMemcpyAsync device-to-device on the core's streams, chunk_bytes at a time, the
// chunks dealt round-robin over the streams (one "lane" per stream). flush() records an event per
// lane that has work and polls until every one is done or the deadline passes. Mappings of a
// peer allocation are opened once per (peer, allocation, generation) and shared by the
// RemoteRegions imported from it; a newer generation from the same peer (a restarted or
// re-created owner) closes the old mappings, so stale RemoteRegions fail with kPeerLost.
//
// Threading: one owner thread at a time (see transport.h); there is no progress thread.

#include "transport/cuda_ipc/cuda_ipc_backend.h"
#include "transport/cuda_ipc/cuda_ipc_identity.h"
#include "transport/cuda_ipc/cuda_ipc_regions.h"

#include <deque>
#include <map>
#include <set>

namespace weightsync::transport::cuda_ipc {

class CudaIpcBackend final : public TransportBackend {
  public:
    explicit CudaIpcBackend(CudaIpcOptions options);
    ~CudaIpcBackend() override;
    CudaIpcBackend(const CudaIpcBackend &) = delete;
    CudaIpcBackend &operator=(const CudaIpcBackend &) = delete;

    [[nodiscard]] const Capabilities &capabilities() const override { return capabilities_; }
    [[nodiscard]] std::string address() const override;
    std::unique_ptr<LocalRegion> registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                int device) override;
    void connect(const std::string &peer_name, const std::string &peer_address) override;
    std::unique_ptr<RemoteRegion> importRegion(const std::string &peer_name,
                                               const RemoteDescriptor &descriptor) override;
    void postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                   size_t target_offset, size_t length) override;
    FlushStats flush(std::chrono::milliseconds timeout) override;
    /// An event on every lane that took copies since the previous mark; reached once they all
    /// completed (the copies before them on their streams completed, as flush() sees them).
    std::optional<uint64_t> mark() override;
    MarkState markState(uint64_t mark) override;
    void startProgressThread() override {}
    void stopProgressThread() override {}

  private:
    struct Peer {
        ProcessAddress address;
        uint64_t generation = 0;  // newest generation imported from this peer (0: none yet)
    };
    struct Lane {
        platform::Event done;
        std::set<std::string> peers;  // written through this lane since the last flush
    };

    /// Enables peer access from the backend's GPU to the GPU with this UUID, once. A GPU this
    /// process cannot see is left to cudaIpcOpenMemHandle's lazy peer access.
    void ensurePeerAccess(const platform::DeviceUuid &uuid, const std::string &peer);
    /// Ends the flush epoch: forgets the lanes' peers, returns the writes posted since the last.
    FlushStats endEpoch();
    /// Closes every mapping imported from the peer (after the streams drain).
    void retireMappings(const std::string &peer_name);
    std::shared_ptr<IpcMapping> mapping(const std::string &peer_name, uint64_t generation,
                                        const IpcKey &key, uint64_t owner_base);

    CudaIpcOptions options_;
    Capabilities capabilities_;
    uint64_t generation_;
    std::string host_;
    platform::DeviceUuid uuid_{};
    std::shared_ptr<CudaIpcCore> core_;
    std::map<std::string, Peer> peers_;
    // (peer name, handle bytes) -> mapping; weak: the RemoteRegions own the mappings.
    std::map<std::pair<std::string, std::string>, std::weak_ptr<IpcMapping>> mappings_;
    std::set<platform::DeviceUuid> peer_access_;  // GPUs already reachable from ours
    std::vector<Lane> lanes_;
    struct Mark {
        uint64_t id = 0;
        std::vector<platform::Event> events;  // one per lane written since the previous mark
    };
    std::vector<bool> lane_marked_;  // no copy on lane i since the last mark
    std::deque<Mark> marks_;         // not yet reached, oldest first
    std::vector<platform::Event> spare_events_;
    uint64_t last_mark_ = 0;
    uint64_t reached_ = 0;  // every mark up to this one is reached
    uint64_t failed_ = 0;   // marks up to this one can no longer be reached (a copy failed)
    size_t next_lane_ = 0;
    FlushStats unflushed_;
};

}  // namespace weightsync::transport::cuda_ipc
