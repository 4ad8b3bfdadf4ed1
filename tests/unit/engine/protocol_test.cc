// The step protocol's messages and key names: every codec round-trips, refuses a message of
// another version, and refuses malformed or incomplete payloads.

#include "engine/metrics.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "engine/protocol/version.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace weightsync::engine::protocol {
namespace {

using weightsync::testing::expectThrows;

template <typename M>
M roundTrip(const M &m, uint64_t version) {
    return decode<M>(encode(m), version, "k");
}

TEST(ProtocolMessages, RoundTripEveryMessage) {
    EXPECT_EQ(roundTrip(Request{7}, 7).version, 7u);
    const Paused p = roundTrip(Paused{7, 6, 1}, 7);
    EXPECT_EQ(p.held, 6u);
    EXPECT_EQ(p.target, 1u);
    const Done d = roundTrip(Done{7, 1234, 56}, 7);
    EXPECT_EQ(d.bytes, 1234);
    EXPECT_EQ(d.writes, 56);
    EXPECT_EQ(roundTrip(Landed{7}, 7).version, 7u);
    const Prepared pr = roundTrip(Prepared{7, 0.25, 0.5}, 7);
    EXPECT_DOUBLE_EQ(pr.wait_seconds, 0.25);
    EXPECT_DOUBLE_EQ(pr.hook_seconds, 0.5);
    const Outcome o = roundTrip(Outcome{7, false, "trainer1", Errc::kMismatch, "why"}, 7);
    EXPECT_FALSE(o.commit);
    EXPECT_EQ(o.by, "trainer1");
    EXPECT_EQ(o.code, Errc::kMismatch);
    EXPECT_EQ(o.reason, "why");
    const Resumed r = roundTrip(Resumed{7, 0.1, 0.2, 0.3, 0.4, true}, 7);
    EXPECT_TRUE(r.swapped);
    EXPECT_DOUBLE_EQ(r.wait_seconds, 0.1);
    EXPECT_DOUBLE_EQ(r.hook_seconds, 0.2);
    EXPECT_DOUBLE_EQ(r.paused_seconds, 0.3);
    EXPECT_DOUBLE_EQ(r.probe_gap_seconds, 0.4);
    // A trainer's checksums travel in its done, every bit of every one of them.
    const Done dc = roundTrip(Done{7, 10, 3, {0, 0xFFFFFFFFFFFFFFFFULL, 0x0123456789ABCDEFULL}}, 7);
    EXPECT_EQ(dc.checksums,
              (std::vector<uint64_t>{0, 0xFFFFFFFFFFFFFFFFULL, 0x0123456789ABCDEFULL}));
    EXPECT_TRUE(roundTrip(Done{7, 10, 3, {}}, 7).checksums.empty());
    EXPECT_EQ(roundTrip(WritesLanded{7, 42}, 7).writes, 42);
    expectThrows(Errc::kProtocol,
                 [] { (void)decode<WritesLanded>(R"({"version":7,"writes":-1})", 7, "k"); });
    const Aborted a = roundTrip(Aborted{7, 6, true, true, 0, "err"}, 7);
    EXPECT_EQ(a.held, 6u);
    EXPECT_TRUE(a.intact && a.serving);
    EXPECT_EQ(a.mismatched_bytes_vs_held, 0);
    const Verified v = roundTrip(Verified{7, true, 100, 0, 0.5}, 7);
    EXPECT_TRUE(v.verified);
    EXPECT_EQ(v.checked_bytes, 100);
    PushMetrics m;
    m.version = 7;
    m.rank = 2;
    m.wire_bytes = 99;
    EXPECT_EQ(roundTrip(m, 7).wire_bytes, 99);
}

TEST(ProtocolMessages, RefusesAnotherVersionsMessage) {
    // A message can never pair with another version's step.
    expectThrows(Errc::kProtocol, [] { (void)decode<Paused>(encode(Paused{3, 2}), 4, "k"); });
    expectThrows(Errc::kProtocol, [] {
        (void)decode<Outcome>(encode(Outcome{3, true, "x", Errc::kInternal, ""}), 2, "k");
    });
}

TEST(ProtocolMessages, RefusesMalformedAndIncompletePayloads) {
    expectThrows(Errc::kProtocol, [] { (void)decode<Done>("{", 1, "v/1/done/0"); });
    expectThrows(Errc::kProtocol, [] { (void)decode<Done>("[]", 1, "v/1/done/0"); });
    expectThrows(Errc::kProtocol, [] { (void)decode<Done>(R"({"version":1})", 1, "k"); });
    // Checksums: a base64 string of whole 64-bit values, nothing else.
    expectThrows(Errc::kProtocol, [] {
        (void)decode<Done>(R"({"version":1,"bytes":1,"writes":1,"checksums":[1]})", 1, "k");
    });
    expectThrows(Errc::kProtocol, [] {
        (void)decode<Done>(R"({"version":1,"bytes":1,"writes":1,"checksums":"AAAA"})", 1, "k");
    });
    expectThrows(Errc::kProtocol, [] {
        (void)decode<Done>(R"({"version":1,"bytes":1,"writes":1,"checksums":"!!"})", 1, "k");
    });
    expectThrows(Errc::kProtocol,
                 [] { (void)decode<Done>(R"({"version":1,"bytes":"x","writes":1})", 1, "k"); });
    expectThrows(Errc::kProtocol,
                 [] { (void)decode<Paused>(R"({"version":-1,"held":0})", 1, "k"); });
    expectThrows(Errc::kProtocol,
                 [] { (void)decode<Paused>(R"({"version":1,"held":0,"target":-1})", 1, "k"); });
    // The error names the key it was read from.
    try {
        (void)decode<Landed>("nope", 1, "v/1/landed/e0r0");
        FAIL();
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("v/1/landed/e0r0"), std::string::npos) << e.what();
    }
}

TEST(ProtocolKeys, NamesAndTheirWriters) {
    EXPECT_EQ(trainerName(3), "trainer3");
    EXPECT_EQ(inferenceName("e0r1"), "inference-e0r1");
    EXPECT_EQ(keys::paused(2, "e0r1"), "v/2/paused/e0r1");
    EXPECT_EQ(participantOf(keys::request(2)), "trainer0");
    EXPECT_EQ(participantOf(keys::done(2, 3)), "trainer3");
    EXPECT_EQ(participantOf(keys::landed(2, "e1r0")), "inference-e1r0");
    EXPECT_EQ(participantOf(keys::prepared(9, "e0r0")), "inference-e0r0");
    EXPECT_EQ(participantOf(keys::trainerReady(1)), "trainer1");
    EXPECT_EQ(participantOf(keys::memory("e0r1")), "inference-e0r1");
    EXPECT_EQ(keys::staged(2, 5, 1), "v/2/staged/5/1");
    EXPECT_EQ(participantOf(keys::staged(2, 5, 1)), "trainer1");
    EXPECT_EQ(participantOf(keys::outcome(2)), "");
    // Every version's keys share one prefix, so a finished version is erased in one call.
    for (const std::string &k :
         {keys::request(5), keys::paused(5, "e0r0"), keys::done(5, 0), keys::landed(5, "e0r0"),
          keys::prepared(5, "e0r0"), keys::outcome(5), keys::resumed(5, "e0r0"),
          keys::aborted(5, "trainer0"), keys::verified(5, "e0r0"), keys::metrics(5, 0),
          keys::staged(5, 1, 0)}) {
        EXPECT_TRUE(k.starts_with(keys::versionPrefix(5))) << k;
        EXPECT_FALSE(k.starts_with(keys::versionPrefix(50))) << k;
    }
}

TEST(ProtocolPoints, NamesRoundTripAndUnknownIsRefused) {
    for (Point p :
         {Point::kBeforeRequest, Point::kPaused, Point::kConverting, Point::kWriting, Point::kDone,
          Point::kLanded, Point::kApplying, Point::kPrepared, Point::kResuming}) {
        EXPECT_EQ(parsePoint(pointName(p)), p);
    }
    expectThrows(Errc::kInvalidArgument, [] { (void)parsePoint("nowhere"); });
}

}  // namespace
}  // namespace weightsync::engine::protocol
