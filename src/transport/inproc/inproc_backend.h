#pragma once
// A memcpy backend for tests inside one process. Regions are addressed by pointer (one address
// space); a process-wide table of live regions lets a write into a deregistered region fail with
// kPeerLost instead of corrupting memory. Writes complete when postWrite returns.

#include "transport/transport.h"

#include <map>

namespace weightsync::transport {

class InprocBackend final : public TransportBackend {
  public:
    InprocBackend();
    ~InprocBackend() override = default;
    InprocBackend(const InprocBackend &) = delete;
    InprocBackend &operator=(const InprocBackend &) = delete;

    [[nodiscard]] const Capabilities &capabilities() const override { return capabilities_; }
    [[nodiscard]] std::string address() const override;
    std::unique_ptr<LocalRegion> registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                int device) override;
    // allocateMemory: the default (nullptr); a memcpy serves the caller's own memory as well.
    void connect(const std::string &peer_name, const std::string &peer_address) override;
    std::unique_ptr<RemoteRegion> importRegion(const std::string &peer_name,
                                               const RemoteDescriptor &descriptor) override;
    void postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                   size_t target_offset, size_t length) override;
    FlushStats flush(std::chrono::milliseconds timeout) override;
    // Every write is a memcpy, complete when postWrite returns: every mark is reached.
    std::optional<uint64_t> mark() override { return ++marks_; }
    MarkState markState(uint64_t mark) override {
        return mark <= marks_ ? MarkState::kReached : MarkState::kFailed;
    }
    void startProgressThread() override {}
    void stopProgressThread() override {}

  private:
    Capabilities capabilities_;
    uint64_t id_;
    uint64_t generation_;
    std::map<std::string, uint64_t> peers_;  // name -> peer backend id
    FlushStats pending_;
    uint64_t marks_ = 0;
};

}  // namespace weightsync::transport
