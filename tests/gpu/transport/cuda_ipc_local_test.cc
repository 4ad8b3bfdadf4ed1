// The CUDA IPC backend inside one process (a region of this process is used directly, since a
// process cannot open its own IPC handles): options, registration checks, range checks, the
// base/offset arithmetic of interior regions, and the same-host rule of connect().

#include "common/error.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#include "transport/cuda_ipc/cuda_ipc_backend.h"
#include "transport/registry.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

namespace weightsync::transport {
namespace {

Errc codeOf(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const Error &e) {
        return e.code();
    }
    ADD_FAILURE() << "no error";
    return Errc::kInternal;
}

TEST(CudaIpcOptions, ParsesAndRejects) {
    const auto options =
        CudaIpcOptions::fromJson({{"streams", 2}, {"chunk_bytes", 1 << 20}, {"device", 1}});
    EXPECT_EQ(options.streams, 2);
    EXPECT_EQ(options.chunk_bytes, size_t{1} << 20);
    EXPECT_EQ(options.device, 1);
    const auto defaults = CudaIpcOptions::fromJson(nullptr);
    EXPECT_EQ(defaults.streams, 4);
    EXPECT_EQ(defaults.chunk_bytes, size_t{64} << 20);
    EXPECT_EQ(defaults.device, -1);
    EXPECT_EQ(codeOf([] { CudaIpcOptions::fromJson({{"streams", 0}}); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] {
                  CudaIpcOptions::fromJson({{"chunk_bytes", -1}});
              }),
              Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { CudaIpcOptions::fromJson({{"stream", 2}}); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { CudaIpcOptions::fromJson({{"device", "0"}}); }), Errc::kInvalidArgument);
    const auto names = backendNames();
    EXPECT_NE(std::find(names.begin(), names.end(), "cuda_ipc"), names.end());
    if (platform::deviceCount() == 0) {
        EXPECT_EQ(codeOf([] { makeBackend("cuda_ipc", nullptr); }), Errc::kUnsupported);
    }
}

class CudaIpcLocal : public ::testing::Test {
  protected:
    void SetUp() override {
        if (platform::deviceCount() == 0) GTEST_SKIP() << "no CUDA device";
        backend_ = makeBackend("cuda_ipc", {{"device", 0}, {"chunk_bytes", 4096}});
        backend_->connect("self", backend_->address());
    }
    std::unique_ptr<TransportBackend> backend_;
};

TEST_F(CudaIpcLocal, Capabilities) {
    const Capabilities &caps = backend_->capabilities();
    EXPECT_EQ(caps.name, "cuda_ipc");
    EXPECT_TRUE(caps.cuda_memory);
    EXPECT_FALSE(caps.host_memory);
    EXPECT_FALSE(caps.needs_target_progress);
    backend_->startProgressThread();  // no-ops
    backend_->stopProgressThread();
}

TEST_F(CudaIpcLocal, RefusesHostManagedAndPoolMemory) {
    std::vector<uint8_t> host(4096);
    EXPECT_EQ(
        codeOf([&] { backend_->registerMemory(host.data(), host.size(), MemoryKind::kHost, -1); }),
        Errc::kUnsupported);
    EXPECT_EQ(
        codeOf([&] { backend_->registerMemory(host.data(), host.size(), MemoryKind::kCuda, 0); }),
        Errc::kUnsupported);
    void *managed = nullptr;
    ASSERT_EQ(cudaMallocManaged(&managed, 4096), cudaSuccess);
    EXPECT_EQ(codeOf([&] { backend_->registerMemory(managed, 4096, MemoryKind::kCuda, 0); }),
              Errc::kUnsupported);
    cudaFree(managed);
    // Stream-ordered pool memory is not exportable with cudaIpcGetMemHandle (like VMM memory).
    void *pooled = nullptr;
    if (cudaMallocAsync(&pooled, 1 << 20, nullptr) == cudaSuccess) {
        ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
        EXPECT_EQ(codeOf([&] { backend_->registerMemory(pooled, 1 << 20, MemoryKind::kCuda, 0); }),
                  Errc::kUnsupported);
        cudaFreeAsync(pooled, nullptr);
        cudaStreamSynchronize(nullptr);
    } else {
        (void)cudaGetLastError();
    }
    platform::DeviceBuffer device(4096, 0);
    EXPECT_EQ(codeOf([&] { backend_->registerMemory(device.data(), 8192, MemoryKind::kCuda, 0); }),
              Errc::kInvalidArgument);  // past the allocation
}

TEST_F(CudaIpcLocal, BadRangesAreRejectedBeforeAnythingIsPosted) {
    constexpr size_t kSize = 1 << 20;
    platform::DeviceBuffer a(kSize, 0);
    platform::DeviceBuffer b(kSize, 0);
    auto la = backend_->registerMemory(a.data(), kSize, MemoryKind::kCuda, 0);
    auto lb = backend_->registerMemory(b.data(), kSize, MemoryKind::kCuda, 0);
    auto rb = backend_->importRegion("self", lb->describe());
    EXPECT_EQ(codeOf([&] { backend_->postWrite(*la, 0, *rb, 1, kSize); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([&] { backend_->postWrite(*la, kSize, *rb, 0, 1); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([&] { backend_->postWrite(*la, SIZE_MAX, *rb, 0, 2); }),
              Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([&] { backend_->postWrite(*la, 0, *rb, 8, SIZE_MAX - 4); }),
              Errc::kInvalidArgument);
    const FlushStats stats = backend_->flush(std::chrono::seconds(5));
    EXPECT_EQ(stats.writes, 0U);
    EXPECT_EQ(codeOf([&] { backend_->importRegion("stranger", lb->describe()); }), Errc::kNotFound);
    RemoteDescriptor other = lb->describe();
    other.backend = "ucx";
    EXPECT_EQ(codeOf([&] { backend_->importRegion("self", other); }), Errc::kMismatch);
}

TEST_F(CudaIpcLocal, InteriorRegionsLandAtTheirOffset) {
    constexpr size_t kSize = 1 << 20;
    constexpr size_t kAt = 12288;
    constexpr size_t kLength = 65536 + 3;
    platform::DeviceBuffer a(kSize, 0);
    platform::DeviceBuffer b(kSize, 0);
    b.fill(0);
    std::vector<uint8_t> bytes(kSize);
    for (size_t i = 0; i < kSize; ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
    ASSERT_EQ(cudaMemcpy(a.data(), bytes.data(), kSize, cudaMemcpyHostToDevice), cudaSuccess);
    auto la = backend_->registerMemory(a.data(), kSize, MemoryKind::kCuda, 0);
    auto lb = backend_->registerMemory(b.as<uint8_t>() + kAt, kLength, MemoryKind::kCuda, 0);
    auto rb = backend_->importRegion("self", lb->describe());
    ASSERT_EQ(rb->size(), kLength);
    backend_->postWrite(*la, 5, *rb, 0, kLength);  // 17 chunks of 4 KiB over 4 streams
    const FlushStats stats = backend_->flush(std::chrono::seconds(5));
    EXPECT_EQ(stats.writes, 1U);
    EXPECT_EQ(stats.bytes, kLength);
    std::vector<uint8_t> got(kSize);
    ASSERT_EQ(cudaMemcpy(got.data(), b.data(), kSize, cudaMemcpyDeviceToHost), cudaSuccess);
    size_t bad = 0;
    for (size_t i = 0; i < kSize; ++i) {
        const uint8_t want = i >= kAt && i < kAt + kLength ? bytes[i - kAt + 5] : 0;
        bad += got[i] != want;
    }
    EXPECT_EQ(bad, 0U);
}

// Marks (early completion): a mark after copies on several streams is reached once every one
// of them completed, and then the bytes are in the target without a flush; a mark with nothing
// copied since the last reached one is reached at once; a flush reaches every mark.
TEST_F(CudaIpcLocal, AReachedMarkMeansItsCopiesLanded) {
    constexpr size_t kSize = size_t{64} << 20;
    platform::DeviceBuffer a(kSize, 0);
    platform::DeviceBuffer b(kSize, 0);
    b.fill(0);
    std::vector<uint8_t> bytes(kSize);
    for (size_t i = 0; i < kSize; ++i) bytes[i] = static_cast<uint8_t>(i * 29 + 1);
    ASSERT_EQ(cudaMemcpy(a.data(), bytes.data(), kSize, cudaMemcpyHostToDevice), cudaSuccess);
    auto la = backend_->registerMemory(a.data(), kSize, MemoryKind::kCuda, 0);
    auto lb = backend_->registerMemory(b.data(), kSize, MemoryKind::kCuda, 0);
    auto rb = backend_->importRegion("self", lb->describe());
    const std::optional<uint64_t> none = backend_->mark();
    ASSERT_TRUE(none.has_value());
    EXPECT_EQ(backend_->markState(*none), TransportBackend::MarkState::kReached);
    const auto reach = [&](uint64_t mark) {
        auto state = backend_->markState(mark);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (state == TransportBackend::MarkState::kPending &&
               std::chrono::steady_clock::now() < deadline) {
            state = backend_->markState(mark);
        }
        return state;
    };
    const auto landed = [&](size_t from, size_t to) {
        std::vector<uint8_t> got(kSize);
        EXPECT_EQ(cudaMemcpy(got.data(), b.data(), kSize, cudaMemcpyDeviceToHost), cudaSuccess);
        size_t bad = 0;
        for (size_t i = 0; i < kSize; ++i) bad += got[i] != (i >= from && i < to ? bytes[i] : 0);
        return bad;
    };
    // Half, in 4 KiB chunks over 4 streams: a mark, reached, the half is there.
    backend_->postWrite(*la, 0, *rb, 0, kSize / 2);
    const std::optional<uint64_t> first = backend_->mark();
    ASSERT_TRUE(first.has_value());
    ASSERT_EQ(reach(*first), TransportBackend::MarkState::kReached);
    EXPECT_EQ(landed(0, kSize / 2), 0U);
    const std::optional<uint64_t> again = backend_->mark();  // nothing copied since
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(backend_->markState(*again), TransportBackend::MarkState::kReached);
    backend_->postWrite(*la, kSize / 2, *rb, kSize / 2, kSize / 2);
    const std::optional<uint64_t> second = backend_->mark();
    ASSERT_TRUE(second.has_value());
    ASSERT_EQ(reach(*second), TransportBackend::MarkState::kReached);
    EXPECT_EQ(landed(0, kSize), 0U);
    backend_->postWrite(*la, 0, *rb, 0, 4096 * 3 + 1);
    const std::optional<uint64_t> third = backend_->mark();
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(backend_->flush(std::chrono::seconds(5)).writes, 3U);
    EXPECT_EQ(backend_->markState(*third), TransportBackend::MarkState::kReached);
    EXPECT_EQ(backend_->markState(*third + 1), TransportBackend::MarkState::kFailed);
}

TEST_F(CudaIpcLocal, ConnectRefusesPeersOnOtherHosts) {
    const std::string address = backend_->address();
    const auto colon = address.find(':');
    ASSERT_NE(colon, std::string::npos);
    auto fields = nlohmann::json::parse(address.substr(colon + 1));
    fields["host"] = "elsewhere/00000000-0000-0000-0000-000000000000";
    const std::string remote = address.substr(0, colon + 1) + fields.dump();
    EXPECT_EQ(codeOf([&] { backend_->connect("far", remote); }), Errc::kUnsupported);
    EXPECT_EQ(codeOf([&] { backend_->connect("junk", "not an address"); }), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace weightsync::transport
