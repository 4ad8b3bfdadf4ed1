#include "support/expect_error.h"
#include "transport/fault/fault_backend.h"
#include "transport/inproc/inproc_backend.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace weightsync::transport {
namespace {

using namespace std::chrono_literals;
using weightsync::testing::codeOf;
using weightsync::testing::thrownBy;

struct Rig {
    FaultInjectingBackend sender;
    InprocBackend engine_a;
    InprocBackend engine_b;
    std::vector<uint8_t> source = std::vector<uint8_t>(256, 7);
    std::vector<uint8_t> buf_a = std::vector<uint8_t>(256, 0);
    std::vector<uint8_t> buf_b = std::vector<uint8_t>(256, 0);
    std::unique_ptr<LocalRegion> src, reg_a, reg_b;
    std::unique_ptr<RemoteRegion> remote_a, remote_b;

    explicit Rig(FaultPolicy policy)
        : sender(std::make_unique<InprocBackend>(), std::move(policy)) {
        src = sender.registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
        reg_a = engine_a.registerMemory(buf_a.data(), buf_a.size(), MemoryKind::kHost, -1);
        reg_b = engine_b.registerMemory(buf_b.data(), buf_b.size(), MemoryKind::kHost, -1);
        sender.connect("a", engine_a.address());
        sender.connect("b", engine_b.address());
        remote_a = sender.importRegion("a", reg_a->describe());
        remote_b = sender.importRegion("b", reg_b->describe());
    }
};

TEST(TransportFault, PassesThroughWithoutFaults) {
    Rig s(FaultPolicy{});
    EXPECT_EQ(s.sender.capabilities().name, "inproc");
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 16);
    EXPECT_EQ(s.sender.flush(100ms).writes, 1U);
    EXPECT_EQ(s.buf_a[0], 7);
    EXPECT_EQ(s.sender.writesSeen(), 1U);
}

TEST(TransportFault, FailsTheNthWrite) {
    FaultPolicy policy;
    policy.fail_write = 2;
    policy.fail_code = Errc::kTransport;
    Rig s(policy);
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 8);
    const auto thrown = thrownBy([&] { s.sender.postWrite(*s.src, 0, *s.remote_b, 0, 8); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kTransport);
    EXPECT_NE(thrown->message.find("peer b"), std::string::npos);
    s.sender.postWrite(*s.src, 0, *s.remote_b, 8, 8);
    EXPECT_EQ(s.sender.flush(100ms).writes, 2U);
}

TEST(TransportFault, FailsTheNthWriteAtFlush) {
    FaultPolicy policy;
    policy.fail_write = 1;
    policy.fail_at_flush = true;
    policy.fail_code = Errc::kPeerLost;
    Rig s(policy);
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 8);
    EXPECT_EQ(codeOf([&] { s.sender.flush(100ms); }), Errc::kPeerLost);
    EXPECT_EQ(s.buf_a[0], 0);  // the failed write never landed
    EXPECT_NO_THROW(s.sender.flush(100ms));
}

TEST(TransportFault, MarksPassThroughButNeverReachLostWrites) {
    Rig s(FaultPolicy{});
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 8);
    const std::optional<uint64_t> ok = s.sender.mark();
    ASSERT_TRUE(ok.has_value());  // inproc writes are complete when posted
    EXPECT_EQ(s.sender.markState(*ok), TransportBackend::MarkState::kReached);
    EXPECT_EQ(s.buf_a[0], 7);
    // Writes to a dropped peer fail at the flush: no mark after them is reached before it.
    s.sender.dropPeer("b");
    s.sender.postWrite(*s.src, 0, *s.remote_b, 0, 8);
    const std::optional<uint64_t> lost = s.sender.mark();
    ASSERT_TRUE(lost.has_value());
    EXPECT_EQ(s.sender.markState(*lost), TransportBackend::MarkState::kFailed);
    EXPECT_EQ(codeOf([&] { s.sender.flush(100ms); }), Errc::kPeerLost);
}

TEST(TransportFault, DroppedPeerLosesWritesAndFlushNamesIt) {
    Rig s(FaultPolicy{});
    s.sender.dropPeer("b");
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 8);
    s.sender.postWrite(*s.src, 0, *s.remote_b, 0, 8);
    const auto thrown = thrownBy([&] { s.sender.flush(100ms); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kPeerLost);
    EXPECT_NE(thrown->message.find("peer b"), std::string::npos) << thrown->message;
    EXPECT_EQ(s.buf_a[0], 7);
    EXPECT_EQ(s.buf_b[0], 0);
    EXPECT_EQ(codeOf([&] { s.sender.connect("b", s.engine_b.address()); }), Errc::kPeerLost);
    s.sender.restorePeer("b");
    s.sender.postWrite(*s.src, 0, *s.remote_b, 0, 8);
    EXPECT_EQ(s.sender.flush(100ms).writes, 1U);
    EXPECT_EQ(s.buf_b[0], 7);
}

TEST(TransportFault, FlushDelayPastTheTimeoutTimesOut) {
    FaultPolicy policy;
    policy.flush_delay = 50ms;
    Rig s(policy);
    s.sender.postWrite(*s.src, 0, *s.remote_a, 0, 8);
    const auto start = std::chrono::steady_clock::now();
    const auto thrown = thrownBy([&] { s.sender.flush(20ms); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kTimeout);
    EXPECT_NE(thrown->message.find('a'), std::string::npos);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 45ms);
    EXPECT_NO_THROW(s.sender.flush(200ms));
}

}  // namespace
}  // namespace weightsync::transport
