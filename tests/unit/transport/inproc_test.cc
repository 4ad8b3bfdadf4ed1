#include "support/expect_error.h"
#include "transport/inproc/inproc_backend.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace weightsync::transport {
namespace {

using weightsync::testing::codeOf;
using weightsync::testing::thrownBy;

struct Pair {
    InprocBackend sender;
    InprocBackend receiver;
    std::vector<uint8_t> source = std::vector<uint8_t>(1024);
    std::vector<uint8_t> target = std::vector<uint8_t>(1024, 0xee);
    std::unique_ptr<LocalRegion> source_region;
    std::unique_ptr<LocalRegion> target_region;
    std::unique_ptr<RemoteRegion> remote;

    Pair() {
        std::iota(source.begin(), source.end(), uint8_t{0});
        source_region = sender.registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
        target_region =
            receiver.registerMemory(target.data(), target.size(), MemoryKind::kHost, -1);
        sender.connect("engine0", receiver.address());
        remote = sender.importRegion("engine0", target_region->describe());
    }
};

TEST(TransportInproc, CapabilitiesAndDescriptor) {
    Pair p;
    EXPECT_EQ(p.sender.capabilities().name, "inproc");
    EXPECT_TRUE(p.sender.capabilities().host_memory);
    EXPECT_FALSE(p.sender.capabilities().cuda_memory);
    EXPECT_FALSE(p.sender.capabilities().needs_target_progress);
    const auto d = p.target_region->describe();
    EXPECT_EQ(d.backend, "inproc");
    EXPECT_EQ(d.address, reinterpret_cast<uintptr_t>(p.target.data()));
    EXPECT_EQ(d.length, p.target.size());
    EXPECT_EQ(p.remote->size(), p.target.size());
    EXPECT_EQ(p.remote->peer(), "engine0");
}

TEST(TransportInproc, WritesLandAndFlushCounts) {
    Pair p;
    p.sender.postWrite(*p.source_region, 10, *p.remote, 100, 50);
    p.sender.postWrite(*p.source_region, 0, *p.remote, 1000, 24);
    const FlushStats stats = p.sender.flush(std::chrono::milliseconds(100));
    EXPECT_EQ(stats.writes, 2U);
    EXPECT_EQ(stats.bytes, 74U);
    for (size_t i = 0; i < 50; ++i) EXPECT_EQ(p.target[100 + i], p.source[10 + i]);
    for (size_t i = 0; i < 24; ++i) EXPECT_EQ(p.target[1000 + i], p.source[i]);
    EXPECT_EQ(p.target[99], 0xee);
    EXPECT_EQ(p.target[150], 0xee);
    EXPECT_EQ(p.sender.flush(std::chrono::milliseconds(100)).writes, 0U);
}

TEST(TransportInproc, RangeChecksRejectBeforeWriting) {
    Pair p;
    EXPECT_EQ(codeOf([&] { p.sender.postWrite(*p.source_region, 1000, *p.remote, 0, 25); }),
              Errc::kInvalidArgument);
    const auto thrown =
        thrownBy([&] { p.sender.postWrite(*p.source_region, 0, *p.remote, 1000, 25); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInvalidArgument);
    EXPECT_NE(thrown->message.find("engine0"), std::string::npos) << thrown->message;
    EXPECT_EQ(codeOf([&] { p.sender.postWrite(*p.source_region, SIZE_MAX, *p.remote, 0, 2); }),
              Errc::kInvalidArgument);
    EXPECT_EQ(p.sender.flush(std::chrono::milliseconds(100)).writes, 0U);
    EXPECT_EQ(p.target[1000], 0xee);
}

TEST(TransportInproc, ImportValidation) {
    Pair p;
    auto d = p.target_region->describe();
    EXPECT_EQ(codeOf([&] { p.sender.importRegion("nobody", d); }), Errc::kNotFound);
    d.backend = "ucx";
    EXPECT_EQ(codeOf([&] { p.sender.importRegion("engine0", d); }), Errc::kMismatch);
    d = p.target_region->describe();
    d.length += 1;
    EXPECT_EQ(codeOf([&] { p.sender.importRegion("engine0", d); }), Errc::kMismatch);
    // A region the peer does not own.
    EXPECT_EQ(codeOf([&] { p.sender.importRegion("engine0", p.source_region->describe()); }),
              Errc::kMismatch);
    EXPECT_EQ(codeOf([&] { p.sender.connect("x", "ucx:whatever"); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([&] { p.sender.connect("x", "inproc:1:2"); }), Errc::kInvalidArgument);
}

TEST(TransportInproc, DeregisteredTargetIsLost) {
    Pair p;
    p.target_region.reset();
    EXPECT_EQ(codeOf([&] { p.sender.postWrite(*p.source_region, 0, *p.remote, 0, 8); }),
              Errc::kPeerLost);
    const auto d = RemoteDescriptor{"inproc", 1, 1, MemoryKind::kHost, -1, 0, "999999999"};
    EXPECT_EQ(codeOf([&] { p.sender.importRegion("engine0", d); }), Errc::kPeerLost);
}

TEST(TransportInproc, RejectsCudaMemory) {
    InprocBackend backend;
    char byte = 0;
    EXPECT_EQ(codeOf([&] { backend.registerMemory(&byte, 1, MemoryKind::kCuda, 0); }),
              Errc::kUnsupported);
    EXPECT_EQ(codeOf([&] { backend.registerMemory(&byte, 0, MemoryKind::kHost, -1); }),
              Errc::kInvalidArgument);
}

}  // namespace
}  // namespace weightsync::transport
