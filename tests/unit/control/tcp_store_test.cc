// TCP failure modes: server stop or death while a client blocks, nothing listening, a server
// that never answers or speaks something else, bad keys, connection bookkeeping.

#include "control/socket.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "control/wire.h"
#include "unit/control/control_test_util.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <thread>

namespace weightsync::control {
namespace {

using testing::contains;
using testing::expectError;
using testing::Ms;
using testing::timedMs;

/// A port that nothing listens on (bound once, then released).
int unusedPort() {
    ScopedFd fd = listenTcp("127.0.0.1", 0);
    return boundPort(fd.get());
}

TEST(ControlTcpStore, ServerBindsEphemeralPortAndStopsIdempotently) {
    TcpStoreServer server;
    EXPECT_GT(server.port(), 0);
    EXPECT_EQ(server.host(), "127.0.0.1");
    TcpStoreClient client("127.0.0.1", server.port(), Ms(1000));
    client.set("k", "v");
    EXPECT_EQ(server.store()->get("k"), "v");  // the served MemoryStore is shared in-process
    server.stop();
    server.stop();
}

TEST(ControlTcpStore, ServerStoppedWhileClientWaits) {
    auto server = std::make_unique<TcpStoreServer>();
    TcpStoreClient client("127.0.0.1", server->port(), Ms(1000));
    client.set("alive", "1");
    std::thread stopper([&] {
        std::this_thread::sleep_for(Ms(200));
        server->stop();
    });
    std::string message;
    const auto ms = timedMs(
        [&] { message = expectError([&] { client.wait("never", Ms(30000)); }, Errc::kPeerLost); });
    stopper.join();
    EXPECT_LT(ms, 2000);
    EXPECT_TRUE(contains(message, "disappeared")) << message;
    EXPECT_TRUE(contains(message, "127.0.0.1:" + std::to_string(server->port()))) << message;
    // Every later call fails the same way, at once.
    const auto later = timedMs([&] {
        expectError([&] { client.get("alive"); }, Errc::kPeerLost);
        expectError([&] { client.set("x", "y"); }, Errc::kPeerLost);
        expectError([&] { client.add("n", 1); }, Errc::kPeerLost);
        expectError([&] { client.watch("", 0, Ms(10000)); }, Errc::kPeerLost);
    });
    EXPECT_LT(later, 200);
}

TEST(ControlTcpStore, ServerProcessKilledWhileClientWaits) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        int port = 0;
        try {
            TcpStoreServer server;
            port = server.port();
            [[maybe_unused]] auto n = ::write(ready[1], &port, sizeof port);
            while (true) ::pause();  // until SIGKILL
        } catch (...) {
            ::_exit(3);
        }
    }
    ::close(ready[1]);
    int port = 0;
    ASSERT_EQ(::read(ready[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
    ::close(ready[0]);

    TcpStoreClient client("127.0.0.1", port, Ms(2000));
    client.set("k", "v");
    EXPECT_EQ(client.get("k"), "v");
    std::thread killer([&] {
        std::this_thread::sleep_for(Ms(200));
        ::kill(child, SIGKILL);
    });
    std::string message;
    const auto ms = timedMs(
        [&] { message = expectError([&] { client.wait("never", Ms(30000)); }, Errc::kPeerLost); });
    killer.join();
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_LT(ms, 2000);
    EXPECT_TRUE(contains(message, "disappeared")) << message;
    expectError([&] { client.get("k"); }, Errc::kPeerLost);
}

TEST(ControlTcpStore, NothingListeningFailsAfterConnectTimeout) {
    const int port = unusedPort();
    std::string message;
    const auto ms = timedMs([&] {
        message = expectError([&] { TcpStoreClient client("127.0.0.1", port, Ms(300)); },
                              Errc::kPeerLost);
    });
    EXPECT_GE(ms, 290);
    EXPECT_LT(ms, 1500);
    EXPECT_TRUE(
        contains(message, "could not connect to coordinator at 127.0.0.1:" + std::to_string(port)))
        << message;
    EXPECT_TRUE(contains(message, "refused")) << message;
}

TEST(ControlTcpStore, ClientRetriesUntilServerStarts) {
    const int port = unusedPort();
    std::unique_ptr<TcpStoreServer> server;
    std::thread starter([&] {
        std::this_thread::sleep_for(Ms(300));
        server = std::make_unique<TcpStoreServer>("127.0.0.1", port);
    });
    TcpStoreClient client("127.0.0.1", port, Ms(5000));
    starter.join();
    client.set("k", "v");
    EXPECT_EQ(client.get("k"), "v");
}

/// Accepts one connection and hands it to behave(fd) on a thread.
class FakeServer {
  public:
    explicit FakeServer(std::function<void(int)> behave) : listen_(listenTcp("127.0.0.1", 0)) {
        port_ = boundPort(listen_.get());
        thread_ = std::thread([this, behave = std::move(behave)] {
            std::string peer;
            conn_ = acceptTcp(listen_.get(), peer);
            if (conn_.valid()) behave(conn_.get());
        });
    }
    ~FakeServer() {
        if (conn_.valid()) ::shutdown(conn_.get(), SHUT_RDWR);
        ::shutdown(listen_.get(), SHUT_RDWR);
        thread_.join();
    }
    [[nodiscard]] int port() const { return port_; }

  private:
    ScopedFd listen_;
    ScopedFd conn_;
    int port_ = 0;
    std::thread thread_;
};

TEST(ControlTcpStore, SilentServerCannotHangBlockingCalls) {
    // Answers the handshake, then reads requests and never replies.
    FakeServer fake([](int fd) {
        try {
            auto hello = wire::parse(recvFrame(fd, kNoDeadline));
            sendFrame(fd, wire::dump({{"id", hello["id"]}, {"ok", true}, {"version", 1}}),
                      kNoDeadline);
            while (true) recvFrame(fd, kNoDeadline);
        } catch (const Error &) {
        }
    });
    TcpStoreClient client("127.0.0.1", fake.port(), Ms(1000), /*reply_margin=*/Ms(200));
    std::string message;
    const auto ms = timedMs(
        [&] { message = expectError([&] { client.wait("k", Ms(300)); }, Errc::kPeerLost); });
    EXPECT_GE(ms, 490);
    EXPECT_LT(ms, 1500);
    EXPECT_TRUE(contains(message, "no reply to 'wait'")) << message;
    expectError([&] { client.get("k"); }, Errc::kPeerLost);
}

TEST(ControlTcpStore, ForeignProtocolIsRejectedQuickly) {
    FakeServer fake([](int fd) {
        const std::string http = "HTTP/1.1 400 Bad Request\r\n\r\n";
        ::send(fd, http.data(), http.size(), MSG_NOSIGNAL);
    });
    const auto ms = timedMs([&] {
        const auto message = expectError(
            [&] { TcpStoreClient client("127.0.0.1", fake.port(), Ms(1000)); }, Errc::kPeerLost);
        EXPECT_TRUE(contains(message, "not a weightsync store peer")) << message;
    });
    EXPECT_LT(ms, 1000);
}

TEST(ControlTcpStore, InvalidUtf8KeyIsRejectedAndConnectionSurvives) {
    TcpStoreServer server;
    TcpStoreClient client("127.0.0.1", server.port(), Ms(1000));
    expectError([&] { client.set(std::string("bad\xff", 4), "v"); }, Errc::kInvalidArgument);
    client.set("good", "v");
    EXPECT_EQ(client.get("good"), "v");
}

TEST(ControlTcpStore, ClosedConnectionsAreReleased) {
    TcpStoreServer server;
    {
        TcpStoreClient a("127.0.0.1", server.port(), Ms(1000));
        TcpStoreClient b("127.0.0.1", server.port(), Ms(1000));
        a.set("k", "v");
        b.get("k");
        EXPECT_EQ(server.connectionCount(), 2U);
    }
    for (int i = 0; i < 100 && server.connectionCount() != 0; ++i) {
        std::this_thread::sleep_for(Ms(10));
    }
    EXPECT_EQ(server.connectionCount(), 0U);
}

TEST(ControlTcpStore, ClientDisconnectAbandonsServerSideWait) {
    TcpStoreServer server;
    {
        std::string error;
        ScopedFd raw = connectTcp("127.0.0.1", server.port(), deadlineAfter(Ms(1000)), error);
        ASSERT_TRUE(raw.valid()) << error;
        const nlohmann::json wait = {
            {"op", "wait"}, {"id", 1}, {"key", "k"}, {"timeout_ms", 60000}};
        sendFrame(raw.get(), wire::dump(wait), deadlineAfter(Ms(1000)));
        for (int i = 0; i < 100 && server.connectionCount() != 1; ++i) {
            std::this_thread::sleep_for(Ms(5));
        }
        EXPECT_EQ(server.connectionCount(), 1U);
    }  // closes the socket while the server waits on "k" for a minute
    const auto ms = timedMs([&] {
        for (int i = 0; i < 200 && server.connectionCount() != 0; ++i) {
            std::this_thread::sleep_for(Ms(5));
        }
    });
    EXPECT_EQ(server.connectionCount(), 0U);
    EXPECT_LT(ms, 500);
}

TEST(ControlTcpStore, StopIsPromptWithManyBlockedClients) {
    auto server = std::make_unique<TcpStoreServer>();
    std::vector<std::thread> threads;
    std::atomic<int> lost{0};
    for (int i = 0; i < 16; ++i) {
        threads.emplace_back([&, port = server->port()] {
            TcpStoreClient client("127.0.0.1", port, Ms(2000));
            try {
                client.watch("none/", 0, Ms(30000));
            } catch (const Error &e) {
                if (e.code() == Errc::kPeerLost) ++lost;
            }
        });
    }
    while (server->connectionCount() < 16) std::this_thread::sleep_for(Ms(5));
    std::this_thread::sleep_for(Ms(50));
    const auto ms = timedMs([&] { server.reset(); });
    for (auto &thread : threads) thread.join();
    EXPECT_LT(ms, 1000);
    EXPECT_EQ(lost.load(), 16);
}

TEST(ControlWire, Base64RoundTripsAndRejectsGarbage) {
    for (const std::string sample : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
        EXPECT_EQ(wire::base64Decode(wire::base64Encode(sample)), sample);
    }
    EXPECT_EQ(wire::base64Encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(wire::base64Encode("fo"), "Zm8=");
    expectError([] { wire::base64Decode("abc"); }, Errc::kProtocol);
    expectError([] { wire::base64Decode("a=bc"); }, Errc::kProtocol);
    expectError([] { wire::base64Decode("ab!c"); }, Errc::kProtocol);
    expectError([] { wire::base64Decode("Zm9="); }, Errc::kProtocol);  // "Zm8=" spelled twice
}

TEST(ControlWire, ErrorCodesRoundTrip) {
    for (Errc code : {Errc::kTimeout, Errc::kPeerLost, Errc::kInvalidArgument, Errc::kProtocol}) {
        EXPECT_EQ(wire::parseCode(wire::codeName(code)), code);
    }
    EXPECT_EQ(wire::parseCode("no such code"), Errc::kInternal);
    EXPECT_EQ(wire::bareMessage(Error(Errc::kTimeout, "late")), "late");
}

}  // namespace
}  // namespace weightsync::control
