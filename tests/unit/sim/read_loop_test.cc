// sim::ReadLoop: no step runs while it is parked, and after rebind() (a swap flip) every step
// reads the new tensors only, window by window.

#include "sim/read_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace weightsync::sim {
namespace {

using namespace std::chrono_literals;

/// The windows a ReadLoop read, as (first byte, bytes).
struct Reads {
    std::mutex mutex;
    std::vector<std::pair<const std::byte *, size_t>> windows;
    size_t size() {
        std::lock_guard lock(mutex);
        return windows.size();
    }
};

/// Waits (up to a generous bound) until `reads` has more than `n` windows.
bool waitForMore(Reads &reads, size_t n) {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (reads.size() <= n) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

engine::LocalWeights weightsOf(std::vector<std::byte> &a, std::vector<std::byte> &b) {
    engine::LocalWeights w;
    w.tensors = {
        {"a", {static_cast<int64_t>(a.size())}, DType::kU8, static_cast<int64_t>(a.size())},
        {"b", {static_cast<int64_t>(b.size())}, DType::kU8, static_cast<int64_t>(b.size())}};
    w.data = {a.data(), b.data()};
    return w;
}

TEST(ReadLoop, ParksAndFollowsARebindToNewTensors) {
    std::vector<std::byte> live_a(1000), live_b(300), staged_a(1000), staged_b(300);
    Reads reads;
    ReadLoop loop(
        readWindows(weightsOf(live_a, live_b)), 100us,
        [&](const std::byte *data, size_t bytes) {
            std::lock_guard lock(reads.mutex);
            reads.windows.emplace_back(data, bytes);
        },
        256);
    ASSERT_TRUE(loop.canRebind());
    ASSERT_TRUE(waitForMore(reads, 8));
    loop.pause();
    const size_t parked_at = reads.size();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(reads.size(), parked_at);  // nothing read while parked
    loop.rebind(weightsOf(staged_a, staged_b));
    loop.resume();
    ASSERT_TRUE(waitForMore(reads, parked_at + 8));
    loop.pause();
    std::lock_guard lock(reads.mutex);
    const auto inside = [](const std::pair<const std::byte *, size_t> &w,
                           const std::vector<std::byte> &t) {
        return w.first >= t.data() && w.first + w.second <= t.data() + t.size();
    };
    for (size_t i = 0; i < reads.windows.size(); ++i) {
        const auto &w = reads.windows[i];
        EXPECT_LE(w.second, 256U);
        if (i < parked_at) {
            EXPECT_TRUE(inside(w, live_a) || inside(w, live_b)) << i;
        } else {
            EXPECT_TRUE(inside(w, staged_a) || inside(w, staged_b)) << i;
        }
    }
    // Round robin from the start of the new tensors: a's windows, then b's.
    EXPECT_EQ(reads.windows[parked_at].first, staged_a.data());
    // The longest gap spans the 20 ms it was parked: its last step before, its first after.
    EXPECT_GE(loop.takeLongestGapSeconds(), 0.020);
}

}  // namespace
}  // namespace weightsync::sim
