#pragma once
// A trainer's staged notices (checksums on): after each stage's writes are posted, a mark on
// every backend (TransportBackend::mark); once every backend reached the marks of a stage, the
// number of the trainer's writes complete at their targets is published (protocol
// WritesLanded, keys::staged), so that receivers checksum those bytes while later stages are
// still on the wire. The guarantee a notice carries is the one a returned flush() gives, the
// same a done message rests on; no ordering between data and a doorbell is assumed.

#include "transport/transport.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

namespace weightsync::engine {

class LandedNotices {
  public:
    /// Called with the notice's number (1, 2, ...) and how many writes are complete.
    using Publish = std::function<void(uint64_t notice, int64_t writes)>;
    explicit LandedNotices(Publish publish) : publish_(std::move(publish)) {}

    /// The first `writes` writes of the plan are posted, through `backends`: marks them. A
    /// backend that cannot tell completion before its flush ends the notices of this version.
    void posted(int64_t writes, const std::vector<transport::TransportBackend *> &backends);
    /// Publishes the furthest stage whose marks are all reached, if further than the last
    /// (non-blocking, but for the publication itself).
    void poll();
    /// After the last stage is posted, before the flush: polls until every mark is reached,
    /// one failed or cannot be known, or `deadline`. Sleeps `interval` between polls.
    void drain(std::chrono::steady_clock::time_point deadline,
               std::chrono::microseconds interval = std::chrono::microseconds(50));
    /// Notices published so far this version.
    [[nodiscard]] uint64_t published() const { return notices_; }

  private:
    struct Stage {
        int64_t writes = 0;
        std::vector<std::pair<transport::TransportBackend *, uint64_t>> marks;
    };
    /// Drops the reached stages from the front; false once a mark failed.
    bool advance(int64_t &writes);

    Publish publish_;
    std::deque<Stage> stages_;  // posted, not all marks reached yet, oldest first
    int64_t published_writes_ = 0;
    uint64_t notices_ = 0;
    bool stopped_ = false;  // a backend cannot tell, or a mark failed: no more notices
};

}  // namespace weightsync::engine
