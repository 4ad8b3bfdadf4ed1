#pragma once
// Test helper: the weightsync::Error a callable throws (its code and message).

#include "common/error.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>

namespace weightsync::testing {

struct Thrown {
    Errc code = Errc::kInternal;
    std::string message;
};

/// Runs fn; returns the Error it threw, or nullopt (and a test failure) when it threw none.
inline std::optional<Thrown> thrownBy(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const Error &e) {
        return Thrown{e.code(), e.what()};
    }
    ADD_FAILURE() << "expected a weightsync::Error";
    return std::nullopt;
}

inline Errc codeOf(const std::function<void()> &fn) {
    const auto thrown = thrownBy(fn);
    return thrown ? thrown->code : Errc::kInternal;
}

/// Expects fn to throw a weightsync::Error with `code` (its message shows on a mismatch).
inline void expectThrows(Errc code, const std::function<void()> &fn) {
    const auto thrown = thrownBy(fn);
    if (thrown) {
        EXPECT_EQ(thrown->code, code) << thrown->message;
    }
}

}  // namespace weightsync::testing
