#pragma once
// Helpers shared by the control-plane tests.

#include "common/error.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

namespace weightsync::control::testing {

using Ms = std::chrono::milliseconds;

/// Runs fn, expects weightsync::Error with code; returns the message (empty on mismatch).
inline std::string expectError(const std::function<void()> &fn, Errc code) {
    try {
        fn();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), code) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "expected Error(" << errcName(code) << "), nothing thrown";
    return {};
}

/// Whether text contains part (error messages, logs).
inline bool contains(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}

/// Wall time of fn in milliseconds.
inline int64_t timedMs(const std::function<void()> &fn) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace weightsync::control::testing
