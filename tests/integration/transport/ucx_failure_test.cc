// A receiver SIGKILLed mid-stream: the sender must fail fast, naming the peer, and recover by
// reconnecting to a restarted receiver.

#include "integration/transport/receiver.h"
#include "support/expect_error.h"
#include "transport/ucx/ucx_backend.h"

#include <gtest/gtest.h>

#include <iostream>
#include <optional>

namespace weightsync::transport {
namespace {

using namespace std::chrono_literals;
using test_support::Receiver;
using test_support::TransportCase;
using weightsync::testing::Thrown;

class TransportUcxFailure : public ::testing::TestWithParam<TransportCase> {};

TEST_P(TransportUcxFailure, ReceiverKilledMidStreamThenRestarted) {
    constexpr size_t kRegion = size_t{4} << 20;
    constexpr size_t kWrite = 64 << 10;
    constexpr auto kTimeout = 2s;
    auto receiver = std::make_unique<Receiver>(GetParam().transports, 1, kRegion, 0);
    UcxOptions options;
    options.transports = GetParam().transports;
    options.config = GetParam().config;
    options.max_inflight_writes = 8;
    options.post_timeout = kTimeout;
    auto sender = makeUcxBackend(options);
    auto source = test_support::randomBytes(kRegion, 3);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver->address());
    auto remote = sender->importRegion("engine0", receiver->regions().at(0));

    const auto start = std::chrono::steady_clock::now();
    std::optional<Thrown> failure;
    auto attempt = [&](const std::function<void()> &fn) {
        try {
            fn();
        } catch (const Error &e) {
            if (!failure) failure = Thrown{e.code(), e.what()};
        }
    };
    for (int i = 0; i < 400 && !failure; ++i) {
        if (i == 16) receiver->process().kill();
        const size_t offset = (static_cast<size_t>(i) * kWrite) % kRegion;
        attempt([&] { sender->postWrite(*local, offset, *remote, offset, kWrite); });
    }
    attempt([&] { sender->flush(kTimeout); });
    const auto elapsed = std::chrono::steady_clock::now() - start;

    ASSERT_TRUE(failure) << "no error after the receiver was killed";
    std::cout << "sender saw: " << failure->message << "\n";
    EXPECT_TRUE(failure->code == Errc::kPeerLost || failure->code == Errc::kTransport ||
                failure->code == Errc::kTimeout)
        << failure->message;
    EXPECT_NE(failure->message.find("engine0"), std::string::npos) << failure->message;
    EXPECT_LT(elapsed, 3 * kTimeout) << "took " << (elapsed / 1ms) << " ms";
    // The peer stays failed until it reconnects.
    EXPECT_NE(weightsync::testing::codeOf([&] { sender->postWrite(*local, 0, *remote, 0, 8); }),
              Errc::kInternal);

    // A restarted receiver under the same name: reconnect, re-import, write, verify.
    receiver = std::make_unique<Receiver>(GetParam().transports, 1, kRegion, 0);
    sender->connect("engine0", receiver->address());
    EXPECT_EQ(weightsync::testing::codeOf([&] { sender->postWrite(*local, 0, *remote, 0, 8); }),
              Errc::kPeerLost);  // the old region belongs to the old incarnation
    remote = sender->importRegion("engine0", receiver->regions().at(0));
    sender->postWrite(*local, 0, *remote, 0, kRegion);
    EXPECT_EQ(sender->flush(10s).bytes, kRegion);
    EXPECT_EQ(receiver->hashes().at(0), test_support::hashOf(source));
}

// A backend whose address was handed out keeps its worker (and so its address) when a peer
// fails and is reconnected: others may be connected to it. (One that never gave its address out
// may continue on a fresh worker, see docs/transport.md; ReceiverKilledMidStreamThenRestarted
// covers that path.)
TEST_P(TransportUcxFailure, PublishedAddressSurvivesAPeersFailure) {
    constexpr size_t kRegion = size_t{1} << 20;
    UcxOptions options;
    options.transports = GetParam().transports;
    options.config = GetParam().config;
    options.post_timeout = 2s;
    auto source = test_support::randomBytes(kRegion, 5);
    const auto fail_and_reconnect = [&](TransportBackend &sender) {
        auto local = sender.registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
        auto receiver = std::make_unique<Receiver>(GetParam().transports, 1, kRegion, 0);
        sender.connect("engine2", receiver->address());
        auto remote = sender.importRegion("engine2", receiver->regions().at(0));
        sender.postWrite(*local, 0, *remote, 0, kRegion);
        (void)sender.flush(2s);
        receiver->process().kill();
        // Posts and then a flush: the failure shows in one of them. Then one more flush, as a
        // failed post leaves its epoch to be reported once by the next flush: consume it
        // before reconnecting.
        bool failed = false;
        try {
            for (int i = 0; i < 64; ++i) sender.postWrite(*local, 0, *remote, 0, kRegion);
            (void)sender.flush(2s);
        } catch (const Error &) {
            failed = true;
        }
        EXPECT_TRUE(failed) << "no error after the receiver was killed";
        try {
            (void)sender.flush(2s);
        } catch (const Error &) {
            // The failed epoch, when the error above came from a post.
        }
        receiver = std::make_unique<Receiver>(GetParam().transports, 1, kRegion, 0);
        sender.connect("engine2", receiver->address());
        remote = sender.importRegion("engine2", receiver->regions().at(0));
        sender.postWrite(*local, 0, *remote, 0, kRegion);
        EXPECT_EQ(sender.flush(10s).bytes, kRegion);
        EXPECT_EQ(receiver->hashes().at(0), test_support::hashOf(source));
    };
    auto published = makeUcxBackend(options);
    const std::string before = published->address();
    fail_and_reconnect(*published);
    EXPECT_EQ(published->address(), before);
}

// The peer dies between posting and flushing: the flush (or, if the death was already noticed,
// the post) must fail naming the peer, within the timeout.
TEST_P(TransportUcxFailure, ReceiverKilledBeforeFlush) {
    constexpr size_t kRegion = size_t{1} << 20;
    constexpr auto kTimeout = 2s;
    Receiver receiver(GetParam().transports, 1, kRegion, 0);
    UcxOptions options;
    options.transports = GetParam().transports;
    options.config = GetParam().config;
    auto sender = makeUcxBackend(options);
    auto source = test_support::randomBytes(kRegion, 4);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine1", receiver.address());
    auto remote = sender->importRegion("engine1", receiver.regions().at(0));
    sender->postWrite(*local, 0, *remote, 0, kRegion);
    sender->flush(kTimeout);  // wire-up done, the peer is known to work

    receiver.process().kill();
    const auto start = std::chrono::steady_clock::now();
    const auto thrown = weightsync::testing::thrownBy([&] {
        for (size_t offset = 0; offset < kRegion; offset += kRegion / 4) {
            sender->postWrite(*local, offset, *remote, offset, kRegion / 4);
        }
        sender->flush(kTimeout);
    });
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(thrown);
    std::cout << "sender saw: " << thrown->message << "\n";
    EXPECT_TRUE(thrown->code == Errc::kPeerLost || thrown->code == Errc::kTransport ||
                thrown->code == Errc::kTimeout)
        << thrown->message;
    EXPECT_NE(thrown->message.find("engine1"), std::string::npos) << thrown->message;
    EXPECT_LT(elapsed, kTimeout + 1s) << "took " << (elapsed / 1ms) << " ms";
}

// Shared memory notices a dead peer only through UCX keepalive (20 s by default), so the plain
// shm case ends in kTimeout and the keepalive case in kPeerLost; tcp sees the reset at once.
std::vector<TransportCase> failureCases() {
    auto cases = test_support::transportCases();
    // 1 s, not shorter: on a loaded 2-core CI machine a 200 ms interval declared a healthy,
    // freshly restarted receiver dead ("Endpoint timeout").
    cases.push_back({"shm_keepalive", "posix,sysv,self", {{"KEEPALIVE_INTERVAL", "1s"}}});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportUcxFailure, ::testing::ValuesIn(failureCases()),
                         test_support::caseName);

}  // namespace
}  // namespace weightsync::transport
