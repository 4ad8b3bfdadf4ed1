#pragma once
// A reader standing in for an inference engine's forward passes: it reads the rank's weights
// while the rank serves and parks while a version lands, so that a read overlapping an update
// would show, and measures the pause generation saw (the demo and the tests run it on every
// inference rank: on the CPU over host memory, or with CUDA as a kernel on the rank's GPU,
// sim/cuda/device_probe.h).

#include "engine/serving.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weightsync::sim {

/// One "generation step" of a ReadLoop: reads [data, data + bytes) and returns once it is read.
using ReadStep = std::function<void(const std::byte *data, size_t bytes)>;

class ReadLoop : public engine::WeightReaders {
  public:
    /// Reads `tensors`, a window of `window` bytes at a time, round robin, one window per step
    /// and a step every `period` at most (a stand-in generation step). `step` reads a window;
    /// empty: a host read (an xxhash of the window).
    explicit ReadLoop(std::vector<std::pair<const std::byte *, size_t>> tensors,
                      std::chrono::microseconds period = std::chrono::milliseconds(5),
                      ReadStep step = {}, size_t window = size_t{1} << 20);
    ~ReadLoop() override;
    ReadLoop(const ReadLoop &) = delete;
    ReadLoop &operator=(const ReadLoop &) = delete;

    void pause() override;  // returns once the reader is parked (no step in flight)
    void resume() override;
    [[nodiscard]] uint64_t reads() const { return reads_.load(); }
    /// The longest time between two consecutive reads since the last call (what a generation
    /// loop sees of an update's pause: its last step on one version to its first on the next),
    /// and resets it. Called just after resume(), the gap still open (the last step before the
    /// pause until now) counts: the next step closes it.
    double takeLongestGapSeconds() override;
    /// It reads through pointers it is given: it follows a swap flip to the other arena.
    [[nodiscard]] bool canRebind() const override { return true; }
    void rebind(const engine::LocalWeights &live) override;

  private:
    void run();
    std::vector<std::pair<const std::byte *, size_t>> tensors_;
    ReadStep step_;
    size_t window_;
    size_t tensor_ = 0;  // the next window: in tensors_[tensor_] at at_
    size_t at_ = 0;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool pause_requested_ = false;
    bool parked_ = false;
    bool stop_ = false;
    bool broken_ = false;  // a step threw: no more steps
    std::atomic<uint64_t> reads_{0};
    std::chrono::microseconds period_;
    std::chrono::steady_clock::time_point last_read_{};
    double longest_gap_ = 0;  // seconds, under mutex_
    std::thread thread_;
};

/// The (non-empty) tensors of `live` as a ReadLoop reads them.
std::vector<std::pair<const std::byte *, size_t>> readWindows(const engine::LocalWeights &live);

/// An engine::ReadersFactory: a ReadLoop over the rank's live tensors in host memory, or in
/// device memory the GPU probe (CUDA builds; none without CUDA).
std::unique_ptr<engine::WeightReaders> readLoopFor(const engine::LocalWeights &live);

}  // namespace weightsync::sim
