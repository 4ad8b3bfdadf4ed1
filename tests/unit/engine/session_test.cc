// The protocol session over real stores: the one wait primitive (values, deadline, aborts, no
// spinning), the single outcome of a version, liveness through the coordinator's last wills, and
// the erasure of finished versions.

#include "engine/protocol/session.h"
#include "control/memory_store.h"
#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace weightsync::engine::protocol {
namespace {

using namespace std::chrono_literals;
using weightsync::testing::expectThrows;
using weightsync::testing::thrownBy;

const Roster kRoster{2, {"e0r0", "e0r1"}};

/// A MemoryStore that counts the calls that block or list.
class CountingStore : public control::MemoryStore {
  public:
    std::vector<control::KeyValue> watch(const std::string &prefix, uint64_t after,
                                         std::chrono::milliseconds timeout) override {
        ++watches;
        return MemoryStore::watch(prefix, after, timeout);
    }
    std::vector<control::KeyValue> list(const std::string &prefix) override {
        ++lists;
        return MemoryStore::list(prefix);
    }
    std::atomic<int> watches{0};
    std::atomic<int> lists{0};
};

Clock::time_point in(std::chrono::milliseconds d) {
    return Clock::now() + d;
}

TEST(ProtocolSession, AwaitReturnsValuesInOrderOnceTheyArrive) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, trainerName(0), kRoster);
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        store->set(keys::paused(1, "e0r1"), encode(Paused{1, 0}));
        store->set(keys::paused(1, "e0r0"), encode(Paused{1, 0}));
    });
    const auto paused = s.awaitAll<Paused>(s.forPeers(keys::paused, 1), 1, in(10s),
                                           AbortOn{.version = 1}, "pauses");
    writer.join();
    ASSERT_EQ(paused.size(), 2u);
    EXPECT_EQ(paused[0].version, 1u);
}

TEST(ProtocolSession, AwaitAnyReturnsOnceOneKeyArrives) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, inferenceName("e0r0"), kRoster);
    const std::vector<std::string> wanted{keys::done(1, 0), keys::staged(1, 1, 1)};
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        store->set(keys::staged(1, 1, 1), encode(WritesLanded{1, 3}));
    });
    EXPECT_EQ(s.awaitAny(wanted, in(10s), AbortOn{.version = 1}, "writes"), 1u);
    writer.join();
    EXPECT_FALSE(s.cached(keys::done(1, 0)).has_value());
    EXPECT_EQ(decode<WritesLanded>(*s.cached(keys::staged(1, 1, 1)), 1, "k").writes, 3);
    // The first present key in the caller's order, of those it knows (a key seen already
    // returns at once).
    EXPECT_EQ(s.awaitAny(wanted, in(10s), AbortOn{.version = 1}, "writes"), 1u);
    store->set(keys::done(1, 0), encode(Done{1, 0, 0}));
    store->set(keys::staged(1, 2, 1), encode(WritesLanded{1, 4}));
    EXPECT_EQ(s.awaitAny({keys::done(1, 0), keys::staged(1, 2, 1)}, in(10s), AbortOn{.version = 1},
                         "writes"),
              0u);
    EXPECT_TRUE(s.cached(keys::staged(1, 2, 1)).has_value());
    // Nothing arrives: a timeout naming who is missing; an aborted version ends it too.
    const auto thrown = thrownBy(
        [&] { (void)s.awaitAny({keys::done(1, 1)}, in(100ms), AbortOn{.version = 1}, "writes"); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kTimeout);
    EXPECT_NE(thrown->message.find("trainer1"), std::string::npos) << thrown->message;
    (void)s.decide({1, false, "trainer0", Errc::kCorruption, "bad bytes"});
    expectThrows(Errc::kCorruption, [&] {
        (void)s.awaitAny({keys::done(1, 1)}, in(10s), AbortOn{.version = 1}, "writes");
    });
}

TEST(ProtocolSession, TimeoutNamesWhoIsMissing) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, trainerName(0), kRoster);
    store->set(keys::landed(1, "e0r0"), encode(Landed{1}));
    const auto thrown = thrownBy([&] {
        (void)s.await(s.forPeers(keys::landed, 1), in(200ms), AbortOn{.version = 1}, "landing");
    });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kTimeout);
    EXPECT_NE(thrown->message.find("inference-e0r1"), std::string::npos) << thrown->message;
    EXPECT_EQ(thrown->message.find("inference-e0r0"), std::string::npos) << thrown->message;
}

TEST(ProtocolSession, WaitingBlocksOnTheStoreInsteadOfSpinning) {
    auto store = std::make_shared<CountingStore>();
    Session s(store, trainerName(1), kRoster);
    expectThrows(Errc::kTimeout, [&] {
        (void)s.await({keys::request(1)}, in(1500ms), AbortOn{.version = 1}, "request");
    });
    // 1.5 s of waiting: one listing, then watches of at most a second each.
    EXPECT_EQ(store->lists.load(), 1);
    EXPECT_LE(store->watches.load(), 3);
}

TEST(ProtocolSession, AnAbortedVersionEndsEveryWaitWithItsCause) {
    auto store = std::make_shared<control::MemoryStore>();
    Session trainer(store, trainerName(0), kRoster);
    Session peer(store, inferenceName("e0r1"), kRoster);
    std::thread aborter([&] {
        std::this_thread::sleep_for(50ms);
        (void)peer.decide({2, false, peer.self(), Errc::kMismatch, "tensor X is wrong"});
    });
    const auto thrown = thrownBy([&] {
        (void)trainer.await(trainer.forPeers(keys::paused, 2), in(10s), AbortOn{.version = 2},
                            "pauses");
    });
    aborter.join();
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kMismatch);
    EXPECT_NE(thrown->message.find("aborted by inference-e0r1: tensor X is wrong"),
              std::string::npos)
        << thrown->message;
}

TEST(ProtocolSession, TheFirstProposalIsTheOutcomeForEverybody) {
    auto store = std::make_shared<control::MemoryStore>();
    Session a(store, inferenceName("e0r0"), kRoster);
    Session b(store, inferenceName("e0r1"), kRoster);
    const Outcome first = a.decide({3, true, a.self(), Errc::kInternal, ""});
    EXPECT_TRUE(first.commit);
    const Outcome second = b.decide({3, false, b.self(), Errc::kTimeout, "late"});
    EXPECT_TRUE(second.commit);
    EXPECT_EQ(second.by, a.self());
    ASSERT_TRUE(b.outcome(3));
    EXPECT_TRUE(b.outcome(3)->commit);
    EXPECT_FALSE(b.outcome(4));
}

TEST(ProtocolSession, ALostParticipantEndsTheWaitsThatNeedIt) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, inferenceName("e0r0"), kRoster);
    store->set(keys::lost(trainerName(1)), trainerName(1));
    const auto thrown = thrownBy([&] {
        (void)s.await(s.forTrainers(keys::done, 4), in(10s), AbortOn{.version = 4}, "writes");
    });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kPeerLost);
    EXPECT_NE(thrown->message.find("trainer1 is gone"), std::string::npos) << thrown->message;
    // The version is aborted in its name: everybody else reports the same cause.
    const auto o = s.outcome(4);
    ASSERT_TRUE(o);
    EXPECT_FALSE(o->commit);
    EXPECT_NE(o->reason.find("trainer1 is gone"), std::string::npos);
}

TEST(ProtocolSession, AParticipantThatLeftCleanlyFailsOnlyWaitsThatNeedIt) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, inferenceName("e0r0"), kRoster);
    store->set(keys::left(inferenceName("e0r1")), "1");
    store->set(keys::lost(inferenceName("e0r1")), inferenceName("e0r1"));
    store->set(keys::request(1), encode(Request{1}));
    // Not needed here: e0r1 finished its part before it went.
    EXPECT_NO_THROW(
        (void)s.await({keys::request(1)}, in(1s), AbortOn{.version = 1}, "the request"));
    // Needed here: gone is gone.
    expectThrows(Errc::kPeerLost, [&] {
        (void)s.await(s.forPeers(keys::landed, 1), in(10s), AbortOn{}, "landing");
    });
}

TEST(ProtocolSession, ANewerRequestIsAProtocolError) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, inferenceName("e0r0"), kRoster);
    store->set(keys::latest(), "5");
    expectThrows(Errc::kProtocol, [&] {
        (void)s.await({keys::request(3)}, in(10s), AbortOn{.version = 3, .newer_request = true},
                      "the request");
    });
}

TEST(ProtocolSession, CancellationEndsAWaitWithinASecond) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, inferenceName("e0r0"), kRoster);
    std::atomic<bool> cancelled{false};
    std::thread canceller([&] {
        std::this_thread::sleep_for(100ms);
        cancelled = true;
    });
    expectThrows(Errc::kTimeout, [&] {
        (void)s.await({keys::request(1)}, in(60s), AbortOn{.version = 1, .cancelled = &cancelled},
                      "the request");
    });
    canceller.join();
}

TEST(ProtocolSession, InitFailureEndsInitWaitsWithItsCode) {
    auto store = std::make_shared<control::MemoryStore>();
    Session a(store, trainerName(0), kRoster);
    Session b(store, trainerName(1), kRoster);
    a.failInit(Errc::kMismatch, "trainer rank 0: layouts differ");
    b.failInit(Errc::kTimeout, "later failure");  // the first one wins
    const auto thrown = thrownBy(
        [&] { (void)b.await({keys::trainerReady(0)}, in(10s), AbortOn{.init = true}, "ready"); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kMismatch);
    EXPECT_NE(thrown->message.find("layouts differ"), std::string::npos) << thrown->message;
}

TEST(ProtocolSession, FinishedVersionsAreErasedAfterTheRetainedOnes) {
    auto store = std::make_shared<control::MemoryStore>();
    Session s(store, trainerName(0), kRoster, /*retain=*/2);
    for (uint64_t v = 1; v <= 6; ++v) {
        store->set(keys::request(v), encode(Request{v}));
        store->set(keys::done(v, 0), encode(Done{v, 1, 1}));
        (void)s.await({keys::request(v)}, in(1s), AbortOn{.version = v}, "request");
        s.finish(v, /*collect=*/true);
    }
    // Versions 5 and 6 remain: the store holds a bounded number of keys.
    EXPECT_EQ(store->list("v/").size(), 4u);
    EXPECT_TRUE(store->get(keys::request(5)));
    EXPECT_FALSE(store->get(keys::request(4)));
}

// Liveness through the real coordinator: a participant whose connection closes, or that falls
// silent past its ttl, is reported lost by the coordinator itself.
class ProtocolLiveness : public ::testing::Test {
  protected:
    std::shared_ptr<control::Store> client() {
        auto c = std::make_shared<control::TcpStoreClient>("127.0.0.1", server_.port(), 5s);
        return std::make_shared<control::PrefixStore>("job", c);
    }
    control::TcpStoreServer server_{"127.0.0.1", 0};
};

TEST_F(ProtocolLiveness, ADeadParticipantIsSeenWithoutWaitingForTheDeadline) {
    Session survivor(client(), inferenceName("e0r0"), kRoster);
    {
        // A trainer whose process ends: its connection closes without withdrawing its will.
        control::TcpStoreClient dying("127.0.0.1", server_.port(), 5s);
        dying.bindWill("job/" + keys::lost(trainerName(1)), trainerName(1), 30s);
    }
    const auto start = Clock::now();
    const auto thrown = thrownBy([&] {
        (void)survivor.await(survivor.forTrainers(keys::done, 1), in(60s), AbortOn{.version = 1},
                             "writes");
    });
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kPeerLost) << thrown->message;  // not the 60 s timeout
    EXPECT_NE(thrown->message.find("trainer1 is gone"), std::string::npos) << thrown->message;
    std::printf("dead participant seen after %.3f s\n", seconds);
}

TEST_F(ProtocolLiveness, AHungParticipantIsSeenAfterItsTtl) {
    Session survivor(client(), inferenceName("e0r0"), kRoster);
    // A trainer that stops answering (SIGSTOP, a deadlock): its connection stays open, silent.
    control::TcpStoreClient hung("127.0.0.1", server_.port(), 5s);
    hung.bindWill("job/" + keys::lost(trainerName(1)), trainerName(1), 500ms);
    const auto start = Clock::now();
    const auto thrown = thrownBy([&] {
        (void)survivor.await(survivor.forTrainers(keys::done, 1), in(60s), AbortOn{.version = 1},
                             "writes");
    });
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kPeerLost) << thrown->message;
    EXPECT_GE(seconds, 0.4);  // not before its ttl: a silent connection is not a dead one at once
    std::printf("hung participant seen after %.3f s (ttl 0.5 s)\n", seconds);
}

TEST_F(ProtocolLiveness, AliveParticipantsKeepTheirWillUnexecuted) {
    Session alive(client(), trainerName(1), kRoster);
    alive.holdLiveness(200ms);  // keep-alives every 50 ms
    Session observer(client(), inferenceName("e0r0"), kRoster);
    std::this_thread::sleep_for(1s);
    EXPECT_FALSE(observer.store().get(keys::lost(trainerName(1))));
}

}  // namespace
}  // namespace weightsync::engine::protocol
