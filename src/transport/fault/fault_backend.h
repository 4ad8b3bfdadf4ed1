#pragma once
// A decorator that injects failures into any TransportBackend. For tests only: it fails the Nth
// write, silently loses writes to "dropped" peers (their flush then throws kPeerLost), delays
// writes and flushes, and silently corrupts one write (one byte flipped on the way, from a bounce
// copy: the source stays intact) or loses one write without any error (what checksums catch).
// Regions are the inner backend's own objects, passed through unchanged.

#include "transport/transport.h"

#include <set>
#include <vector>

namespace weightsync::transport {

struct FaultPolicy {
    uint64_t fail_write = 0;              // 1-based index of the postWrite call to fail; 0 = none
    Errc fail_code = Errc::kTransport;    // the code that failure carries
    bool fail_at_flush = false;           // report that failure from the next flush, not postWrite
    std::set<std::string> dropped_peers;  // writes are lost, connect/flush throw kPeerLost
    std::chrono::milliseconds write_delay{0};  // slept before every postWrite
    std::chrono::milliseconds flush_delay{0};  // slept in flush; >= timeout -> kTimeout
    uint64_t corrupt_write = 0;  // 1-based index of a postWrite that lands with one byte flipped
    uint64_t corrupt_byte = 0;   // which byte (modulo the write's length) and bit (/ length % 8)
    uint64_t lose_write = 0;     // 1-based index of a postWrite that is silently not done
};

class FaultInjectingBackend final : public TransportBackend {
  public:
    FaultInjectingBackend(std::unique_ptr<TransportBackend> inner, FaultPolicy policy);

    /// Changes the policy from now on (the write counter keeps running).
    void setPolicy(FaultPolicy policy) { policy_ = std::move(policy); }
    void dropPeer(const std::string &peer_name) { policy_.dropped_peers.insert(peer_name); }
    void restorePeer(const std::string &peer_name) { policy_.dropped_peers.erase(peer_name); }
    [[nodiscard]] uint64_t writesSeen() const { return writes_seen_; }
    [[nodiscard]] TransportBackend &inner() { return *inner_; }

    [[nodiscard]] const Capabilities &capabilities() const override;
    [[nodiscard]] std::string address() const override;
    std::unique_ptr<LocalRegion> registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                int device) override;
    std::unique_ptr<LocalRegion> allocateMemory(size_t length, MemoryKind kind,
                                                int device) override;
    void connect(const std::string &peer_name, const std::string &peer_address) override;
    std::unique_ptr<RemoteRegion> importRegion(const std::string &peer_name,
                                               const RemoteDescriptor &descriptor) override;
    void postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                   size_t target_offset, size_t length) override;
    FlushStats flush(std::chrono::milliseconds timeout) override;
    std::optional<uint64_t> mark() override;
    MarkState markState(uint64_t mark) override;
    void startProgressThread() override;
    void stopProgressThread() override;

  private:
    std::unique_ptr<TransportBackend> inner_;
    FaultPolicy policy_;
    uint64_t writes_seen_ = 0;
    std::set<std::string> written_peers_;  // peers written since the last flush
    std::set<std::string> lost_peers_;     // dropped peers that lost writes since the last flush
    std::string deferred_failure_;         // peer of a failure to report at the next flush
    // The corrupted write's bytes, registered, alive until the next flush.
    std::vector<std::byte> bounce_;
    std::unique_ptr<LocalRegion> bounce_region_;
};

}  // namespace weightsync::transport
