#pragma once
// Path of the weightsync tool for tests that start real processes. CTest passes it in
// WEIGHTSYNC_BIN (tests/CMakeLists.txt); running a test binary by hand needs the same variable.

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace weightsync::testing {

inline std::string weightsyncBin() {
    const char *bin = std::getenv("WEIGHTSYNC_BIN");
    if (bin == nullptr || *bin == '\0') {
        ADD_FAILURE() << "WEIGHTSYNC_BIN is not set (run through ctest)";
        return "weightsync";
    }
    return bin;
}

}  // namespace weightsync::testing
