#pragma once
// Helpers shared by the control-plane tests.

#include "common/error.h"
#include "support/etcd_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

namespace weightsync::control::testing {

using Ms = std::chrono::milliseconds;

/// The Store implementations the contract tests run against.
enum class Backend { kMemory, kTcp, kEtcd };

inline std::string backendName(Backend backend) {
    switch (backend) {
        case Backend::kMemory: return "Memory";
        case Backend::kTcp: return "Tcp";
        case Backend::kEtcd: return "Etcd";
    }
    return "?";
}

/// Whether this build has the etcd store (libcurl found at configure time).
inline constexpr bool kEtcdBuilt =
#ifdef WEIGHTSYNC_HAVE_ETCD
    true;
#else
    false;
#endif

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

/// Skips the current test when the etcd store is not built or no etcd server is installed.
#define WEIGHTSYNC_REQUIRE_ETCD_BACKEND()                                                     \
    do {                                                                                      \
        if (!::weightsync::control::testing::kEtcdBuilt)                                      \
            GTEST_SKIP() << "this build has no etcd store (libcurl4-openssl-dev is missing)"; \
        WEIGHTSYNC_REQUIRE_ETCD();                                                            \
    } while (false)
