#pragma once
// Shared by the fuzz targets. A decoder may refuse bad input with weightsync::Error and nothing
// else: any other exception escapes LLVMFuzzerTestOneInput, and libFuzzer reports it (like a
// sanitizer finding, a crash or a broken round trip) as a crash with the input that caused it.

#include "common/error.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace weightsync::fuzz {

inline std::string_view text(const uint8_t *data, size_t size) {
    return {reinterpret_cast<const char *>(data), size};
}

/// Runs fn; true when it returned, false when it refused the input with weightsync::Error.
template <typename Fn>
bool accepted(Fn &&fn) {
    try {
        fn();
        return true;
    } catch (const Error &) {
        return false;
    }
}

/// A property of accepted input that must hold (a round trip, a reply that parses).
inline void require(bool cond, const char *what) {
    if (!cond) {
        std::fprintf(stderr, "fuzz property violated: %s\n", what);
        std::abort();
    }
}

}  // namespace weightsync::fuzz
