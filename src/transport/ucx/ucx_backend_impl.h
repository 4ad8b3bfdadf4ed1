#pragma once
// UcxBackend: TransportBackend over UCP.
//
// Threading: every UCP call goes through UcxCore::mutex, and the worker is created
// UCS_THREAD_MODE_SERIALIZED. The progress thread takes that mutex only while it progresses
// (never while it sleeps on the event fd), so the owner thread may keep calling the backend while
// the progress thread runs. The backend itself is still driven by one owner thread at a time.

#include "transport/ucx/ucx_backend.h"
#include "transport/ucx/ucx_inflight.h"
#include "transport/ucx/ucx_regions.h"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <thread>

namespace weightsync::transport::ucx {

class UcxBackend final : public TransportBackend {
  public:
    explicit UcxBackend(UcxOptions options);
    ~UcxBackend() override;
    UcxBackend(const UcxBackend &) = delete;
    UcxBackend &operator=(const UcxBackend &) = delete;

    [[nodiscard]] const Capabilities &capabilities() const override { return capabilities_; }
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
    /// A worker flush request when UCP puts were posted since the last mark (writes into a
    /// mapped shared segment are complete when postWrite returns).
    std::optional<uint64_t> mark() override;
    MarkState markState(uint64_t mark) override;
    void startProgressThread() override;
    void stopProgressThread() override;

  private:
    using Clock = std::chrono::steady_clock;

    /// Progresses the worker and reaps requests until done() or the deadline; false on timeout.
    bool progressUntil(const std::function<bool()> &done, Clock::time_point deadline);
    /// Force-closes endpoints that failed, so their outstanding requests complete.
    void closeFailedEndpoints();
    /// Throws if the peer cannot take writes (failed, closed or replaced by a reconnect).
    void checkUsable(const UcxEndpoint &peer) const;
    /// Marks the peers with outstanding work as failed (and closes them), then throws kTimeout.
    [[noreturn]] void failTimeout(const std::vector<std::shared_ptr<UcxEndpoint>> &peers,
                                  std::string_view what, std::chrono::milliseconds timeout);
    void putChunk(const UcxLocalRegion &source, size_t source_offset, UcxRemoteRegion &target,
                  size_t target_offset, size_t length);
    void progressLoop();
    /// After a peer failed, and when no other peer is usable and nobody was given this
    /// backend's address: continue on a fresh worker. A peer killed while it was putting a
    /// message into this worker's shared-memory receive queue can leave that queue blocked for
    /// good (UCX's mm transport), so no new peer's wire-up reply would ever be read.
    void renewWorker();

    UcxOptions options_;
    Capabilities capabilities_;
    uint64_t generation_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<UcxCore> core_;
    std::map<std::string, std::shared_ptr<UcxEndpoint>> peers_;
    std::vector<std::shared_ptr<UcxEndpoint>> dirty_;  // peers written since the last flush
    UcxInflight inflight_;
    FlushStats unflushed_;  // writes posted since the last flush
    // Marks (mark()): every mark up to reached_ is reached; the others wait for their worker
    // flush request (nullptr: nothing was put since the previous mark), oldest first.
    uint64_t marks_ = 0;
    uint64_t reached_ = 0;
    uint64_t flushed_ = 0;  // marks a flush() covered: those not reached failed
    uint64_t puts_since_mark_ = 0;
    std::deque<std::pair<uint64_t, void *>> mark_requests_;
    std::thread progress_thread_;
    std::atomic<bool> stop_{false};
    mutable std::atomic<bool> address_given_{false};  // address() was called: peers may use it
};

}  // namespace weightsync::transport::ucx
