#include "sim/read_loop.h"

#include "common/log.h"

#if WEIGHTSYNC_HAVE_CUDA
#include "sim/cuda/device_probe.h"
#endif

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

namespace weightsync::sim {

ReadLoop::ReadLoop(std::vector<std::pair<const std::byte *, size_t>> tensors,
                   std::chrono::microseconds period, ReadStep step, size_t window)
    : tensors_(std::move(tensors)),
      step_(step ? std::move(step) : ReadStep([](const std::byte *data, size_t bytes) {
          (void)XXH3_64bits(data, bytes);
      })),
      window_(std::max<size_t>(window, 1)),
      period_(period),
      thread_([this] { run(); }) {}

double ReadLoop::takeLongestGapSeconds() {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    double gap = std::exchange(longest_gap_, 0.0);
    if (last_read_.time_since_epoch().count() != 0) {
        gap = std::max(gap, std::chrono::duration<double>(now - last_read_).count());
        last_read_ = now;  // the open gap is counted here, not again by the next step
    }
    return gap;
}

void ReadLoop::rebind(const engine::LocalWeights &live) {
    std::lock_guard lock(mutex_);
    tensors_ = readWindows(live);
    tensor_ = 0;
    at_ = 0;
}

ReadLoop::~ReadLoop() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void ReadLoop::run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
        if (pause_requested_) {
            parked_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return stop_ || !pause_requested_; });
            parked_ = false;
            continue;
        }
        // One "forward pass": read a window of the weights (pause() waits for it).
        if (!tensors_.empty() && !broken_) {
            const auto [data, bytes] = tensors_[tensor_];
            const size_t n = std::min(window_, bytes - at_);
            try {
                step_(data + at_, n);
            } catch (const std::exception &e) {
                // A reader that cannot read stops reading; the updates go on without it.
                logger("sim")->error("read loop: a step failed, no more steps: {}", e.what());
                broken_ = true;
                continue;
            }
            at_ += n;
            if (at_ >= bytes) {
                at_ = 0;
                tensor_ = (tensor_ + 1) % tensors_.size();
            }
            reads_.fetch_add(1);
            const auto now = std::chrono::steady_clock::now();
            if (last_read_.time_since_epoch().count() != 0) {
                longest_gap_ =
                    std::max(longest_gap_, std::chrono::duration<double>(now - last_read_).count());
            }
            last_read_ = now;
        }
        cv_.wait_for(lock, period_);
    }
}

void ReadLoop::pause() {
    std::unique_lock lock(mutex_);
    pause_requested_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return parked_ || stop_; });
}

void ReadLoop::resume() {
    {
        std::lock_guard lock(mutex_);
        pause_requested_ = false;
    }
    cv_.notify_all();
}

std::vector<std::pair<const std::byte *, size_t>> readWindows(const engine::LocalWeights &live) {
    std::vector<std::pair<const std::byte *, size_t>> tensors;
    for (size_t i = 0; i < live.tensors.size(); ++i) {
        if (live.tensors[i].bytes > 0) {
            tensors.emplace_back(live.data[i], static_cast<size_t>(live.tensors[i].bytes));
        }
    }
    return tensors;
}

std::unique_ptr<engine::WeightReaders> readLoopFor(const engine::LocalWeights &live) {
    if (live.on_device) {
#if WEIGHTSYNC_HAVE_CUDA
        return makeDeviceProbe(live);
#else
        return nullptr;  // nothing can read device memory in this build
#endif
    }
    return std::make_unique<ReadLoop>(readWindows(live));
}

}  // namespace weightsync::sim
