#include "sim/read_loop.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace weightsync::sim {

ReadLoop::ReadLoop(std::vector<std::pair<const std::byte *, size_t>> tensors,
                   std::chrono::microseconds period)
    : tensors_(std::move(tensors)), period_(period), thread_([this] { run(); }) {}

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

ReadLoop::~ReadLoop() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void ReadLoop::run() {
    constexpr size_t kWindow = size_t{1} << 20;
    size_t tensor = 0;
    size_t at = 0;
    std::unique_lock lock(mutex_);
    while (!stop_) {
        if (pause_requested_) {
            parked_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return stop_ || !pause_requested_; });
            parked_ = false;
            continue;
        }
        // One "forward pass": read a window of the weights.
        if (!tensors_.empty()) {
            const auto [data, bytes] = tensors_[tensor];
            const size_t n = std::min(kWindow, bytes - at);
            (void)XXH3_64bits(data + at, n);
            at += n;
            if (at >= bytes) {
                at = 0;
                tensor = (tensor + 1) % tensors_.size();
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

std::unique_ptr<engine::WeightReaders> readLoopFor(const engine::LocalWeights &live) {
    if (live.on_device) return nullptr;
    std::vector<std::pair<const std::byte *, size_t>> tensors;
    for (size_t i = 0; i < live.tensors.size(); ++i) {
        if (live.tensors[i].bytes > 0) {
            tensors.emplace_back(live.data[i], static_cast<size_t>(live.tensors[i].bytes));
        }
    }
    return std::make_unique<ReadLoop>(std::move(tensors));
}

}  // namespace weightsync::sim
