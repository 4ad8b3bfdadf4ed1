#pragma once
// Deadlines for the control plane: steady clock, saturating arithmetic for huge timeouts.

#include <chrono>

namespace weightsync::control {

using Clock = std::chrono::steady_clock;
/// "No deadline": blocks until the awaited thing happens or the socket is shut down.
inline constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

/// now + timeout, saturating at kNoDeadline; a non-positive timeout means "already due".
inline Clock::time_point deadlineAfter(std::chrono::milliseconds timeout) {
    const auto now = Clock::now();
    if (timeout <= std::chrono::milliseconds::zero()) return now;
    if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(kNoDeadline - now)) {
        return kNoDeadline;
    }
    return now + timeout;
}

}  // namespace weightsync::control
