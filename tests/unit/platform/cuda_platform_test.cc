// platform/cuda: error mapping, the no-device behaviour, and (with a GPU) the RAII helpers and the
// device arena.

#include "common/memory_kind.h"
#include "platform/cuda/cuda_arena.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/memory.h"
#include "platform/cuda/resources.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace weightsync::platform {
namespace {

TEST(PlatformCuda, ErrorsMapToUnsupportedOrTransport) {
    EXPECT_EQ(cudaErrc(cudaErrorNoDevice), Errc::kUnsupported);
    EXPECT_EQ(cudaErrc(cudaErrorInsufficientDriver), Errc::kUnsupported);
    EXPECT_EQ(cudaErrc(cudaErrorPeerAccessUnsupported), Errc::kUnsupported);
    EXPECT_EQ(cudaErrc(cudaErrorInvalidValue), Errc::kTransport);
    EXPECT_EQ(cudaErrc(cudaErrorIllegalAddress), Errc::kTransport);
    EXPECT_NO_THROW(cudaCheck(cudaSuccess, "nothing"));
    try {
        cudaCheck(cudaErrorInvalidValue, "copying {} bytes", 42);
        ADD_FAILURE() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kTransport);
        const std::string what = e.what();
        EXPECT_NE(what.find("copying 42 bytes"), std::string::npos) << what;
        EXPECT_NE(what.find("cudaErrorInvalidValue"), std::string::npos) << what;
    }
}

TEST(PlatformCuda, DeviceCountNeverThrowsAndArenasNeedADevice) {
    int count = -1;
    EXPECT_NO_THROW(count = deviceCount());
    EXPECT_GE(count, 0);
    try {
        (void)makeCudaArena(4096, count);  // one past the last device
        ADD_FAILURE() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kUnsupported);
    }
}

class PlatformCudaGpu : public ::testing::Test {
  protected:
    void SetUp() override {
        if (deviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    }
};

TEST_F(PlatformCudaGpu, ArenaIsZeroedDeviceMemoryFromCudaMalloc) {
    const auto arena = makeCudaArena(1 << 20, 0);
    EXPECT_EQ(arena->kind(), weightsync::MemoryKind::kCuda);
    EXPECT_EQ(arena->device(), 0);
    EXPECT_EQ(arena->size(), size_t{1} << 20);
    const PointerInfo info = pointerInfo(arena->data());
    EXPECT_EQ(info.kind, PointerKind::kDevice);
    EXPECT_EQ(info.device, 0);
    EXPECT_TRUE(legacyIpcCapable(arena->data()));
    const AllocationRange range = allocationRange(arena->data() + 100);
    EXPECT_EQ(range.base, reinterpret_cast<uintptr_t>(arena->data()));
    EXPECT_GE(range.size, size_t{1} << 20);
    std::vector<uint8_t> host(1 << 20, 0xff);
    ASSERT_EQ(cudaMemcpy(host.data(), arena->data(), host.size(), cudaMemcpyDeviceToHost),
              cudaSuccess);
    EXPECT_EQ(std::count(host.begin(), host.end(), 0), static_cast<long>(host.size()));
}

TEST_F(PlatformCudaGpu, LargeAllocationsAreWholeMultiplesOfTheGranularity) {
    // An arena of an odd size (as a receiver's tensors add up to): its allocation is rounded up
    // to whole 2 MiB units, so peers' copies into it run at the link rate (issue 13).
    const size_t odd = (size_t{3} << 20) + 4096;
    const auto arena = makeCudaArena(odd, 0);
    EXPECT_EQ(arena->size(), odd);
    const AllocationRange range = allocationRange(arena->data());
    EXPECT_EQ(range.size % kDeviceAllocationGranularity, 0U) << range.size;
    EXPECT_EQ(range.size, size_t{4} << 20);
    const DeviceBuffer small(4096, 0);  // small buffers are not rounded
    EXPECT_LT(allocationRange(small.data()).size, kDeviceAllocationGranularity);
}

TEST_F(PlatformCudaGpu, GuardStreamEventAndBuffer) {
    const int last = deviceCount() - 1;
    // A thread working on GPU 0 (its context started) gets it back after a guard.
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaFree(nullptr), cudaSuccess);
    {
        DeviceGuard guard(last);
        EXPECT_EQ(currentDevice(), last);
    }
    EXPECT_EQ(currentDevice(), 0);
    EXPECT_EQ(uuidString(deviceUuid(0)).rfind("GPU-", 0), 0U);
    EXPECT_EQ(deviceByUuid(deviceUuid(last)), last);
    EXPECT_FALSE(deviceName(0).empty());
    EXPECT_FALSE(canAccessPeer(0, 0));

    Stream stream(0);
    DeviceBuffer buffer(4096, 0);
    Event start(0, true);
    Event end(0, true);
    start.record(stream.get());
    ASSERT_EQ(cudaMemsetAsync(buffer.data(), 7, buffer.size(), stream.get()), cudaSuccess);
    end.record(stream.get());
    end.synchronize();
    EXPECT_TRUE(end.query());
    EXPECT_GE(Event::elapsedMs(start, end), 0.0f);
    DeviceBuffer moved = std::move(buffer);
    EXPECT_EQ(buffer.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state
    EXPECT_EQ(moved.size(), 4096U);
}

}  // namespace
}  // namespace weightsync::platform
