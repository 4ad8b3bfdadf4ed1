// DeviceGuard starts no context on a device the process does not use (with 2 GPUs; ctest runs
// each test in a process of its own, so the process starts with no context anywhere).

#include "platform/cuda/device.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

namespace weightsync::platform {
namespace {

TEST(PlatformDeviceGuard, StartsNoContextOnADeviceTheProcessDoesNotUse) {
    if (deviceCount() < 2) GTEST_SKIP() << "needs 2 GPUs";
    if (primaryContextActive(0) || primaryContextActive(1)) {
        GTEST_SKIP() << "a context exists already: run this test in a process of its own";
    }
    // An inference rank on GPU 1 whose thread never chose a device (the default is 0).
    {
        DeviceGuard guard(1);
        ASSERT_EQ(cudaFree(nullptr), cudaSuccess);  // starts GPU 1's context
    }
    EXPECT_TRUE(primaryContextActive(1));
    EXPECT_FALSE(primaryContextActive(0)) << "leaving the guard started GPU 0's context";
    EXPECT_EQ(currentDevice(), 1);
    // A thread that works on GPU 0 gets it back.
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaFree(nullptr), cudaSuccess);
    {
        DeviceGuard guard(1);
        EXPECT_EQ(currentDevice(), 1);
    }
    EXPECT_EQ(currentDevice(), 0);
}

}  // namespace
}  // namespace weightsync::platform
