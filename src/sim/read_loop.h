#pragma once
// A reader standing in for an inference engine's forward passes: it reads the rank's weights
// while the rank serves and parks while a version lands, so that a read overlapping an update
// would show (the demo and the tests run it on every inference rank with host memory).

#include "engine/serving.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weightsync::sim {

class ReadLoop : public engine::WeightReaders {
  public:
    /// Reads `tensors` (host memory), a window at a time, round robin, one window per `period`
    /// (a stand-in generation step).
    explicit ReadLoop(std::vector<std::pair<const std::byte *, size_t>> tensors,
                      std::chrono::microseconds period = std::chrono::milliseconds(5));
    ~ReadLoop() override;
    ReadLoop(const ReadLoop &) = delete;
    ReadLoop &operator=(const ReadLoop &) = delete;

    void pause() override;  // returns once the reader is parked
    void resume() override;
    [[nodiscard]] uint64_t reads() const { return reads_.load(); }
    /// The longest time between two consecutive reads since the last call (what a generation
    /// loop sees of an update's pause: its last step on one version to its first on the next),
    /// and resets it. Called just after resume(), the gap still open (the last step before the
    /// pause until now) counts: the next step closes it.
    double takeLongestGapSeconds() override;

  private:
    void run();
    std::vector<std::pair<const std::byte *, size_t>> tensors_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool pause_requested_ = false;
    bool parked_ = false;
    bool stop_ = false;
    std::atomic<uint64_t> reads_{0};
    std::chrono::microseconds period_;
    std::chrono::steady_clock::time_point last_read_{};
    double longest_gap_ = 0;  // seconds, under mutex_
    std::thread thread_;
};

/// An engine::ReadersFactory: a ReadLoop over the rank's live tensors when they are in host
/// memory; none for device memory.
std::unique_ptr<engine::WeightReaders> readLoopFor(const engine::LocalWeights &live);

}  // namespace weightsync::sim
