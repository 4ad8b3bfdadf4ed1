// The probes of issue 14 against the real `weightsync coordinator` process: it must survive
// every one of them (and exit 0 on SIGTERM afterwards), keep its memory when clients lie about
// frame sizes, drop half-sent frames after its read timeout, clamp huge wait timeouts and refuse
// connections over its cap, all while serving a well-behaved client.

#include "control/tcp_store_client.h"
#include "support/peer_process.h"
#include "support/weightsync_bin.h"
#include "unit/control/control_test_util.h"
#include "unit/control/raw_client.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <list>
#include <random>

namespace weightsync::control {
namespace {

using nlohmann::json;
using testing::contains;
using testing::expectError;
using testing::header;
using testing::Ms;
using testing::RawClient;

/// `weightsync coordinator --port 0` with extra flags; SIGTERM and exit status 0 at the end.
class Coordinator {
  public:
    explicit Coordinator(std::vector<std::string> flags) {
        const auto dir = std::filesystem::temp_directory_path() /
                         ("ws-coordinator-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        port_file_ = (dir / "port").string();
        std::filesystem::remove(port_file_);
        std::vector<std::string> args = {"coordinator", "--port", "0", "--port-file", port_file_};
        args.insert(args.end(), flags.begin(), flags.end());
        process_ = std::make_unique<weightsync::testing::PeerProcess>(
            weightsync::testing::weightsyncBin(), args);
        for (int i = 0; i < 2000 && port_ == 0; ++i) {
            std::ifstream in(port_file_);
            if (!(in >> port_)) std::this_thread::sleep_for(Ms(5));
        }
        EXPECT_GT(port_, 0) << "the coordinator did not start";
    }
    ~Coordinator() { std::filesystem::remove(port_file_); }

    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] pid_t pid() const { return process_->pid(); }
    [[nodiscard]] bool alive() const { return ::kill(process_->pid(), 0) == 0; }

    /// A TcpStoreClient is served.
    void expectServes() const {
        TcpStoreClient client("127.0.0.1", port_, Ms(5000));
        client.set("alive", "yes");
        EXPECT_EQ(client.get("alive"), "yes");
    }

    /// A field of /proc/<pid>/status in kB ("VmRSS") or as a count ("Threads").
    [[nodiscard]] int64_t status(const std::string &field) const {
        std::ifstream in("/proc/" + std::to_string(pid()) + "/status");
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
        }
        ADD_FAILURE() << "no " << field << " in /proc/" << pid() << "/status";
        return -1;
    }

    /// SIGTERM; the exit status (0 = a clean shutdown).
    int stop() {
        ::kill(process_->pid(), SIGTERM);
        return process_->wait(Ms(10000));
    }

  private:
    std::string port_file_;
    int port_ = 0;
    std::unique_ptr<weightsync::testing::PeerProcess> process_;
};

TEST(ControlCoordinatorProcess, SurvivesADeeplyNestedId) {
    Coordinator coordinator({});
    RawClient raw(coordinator.port());
    raw.sendBytes(encodeFrame(testing::deepIdRequest(100000)));
    const json reply = raw.reply();
    EXPECT_EQ(reply.at("code"), "protocol");
    EXPECT_TRUE(contains(reply.at("error"), "nested deeper than 64 levels")) << reply.dump();
    EXPECT_TRUE(coordinator.alive());
    coordinator.expectServes();
    EXPECT_EQ(coordinator.stop(), 0);
}

TEST(ControlCoordinatorProcess, FramesClaimingHugeSizesReserveNoMemory) {
    Coordinator coordinator({});
    coordinator.expectServes();
    const int64_t before_kb = coordinator.status("VmRSS");
    std::mt19937 random(14);
    std::list<RawClient> liars;
    for (uint32_t claim : {200U << 20, 250U << 20, (256U << 20) - 1}) {
        std::string bytes = header(claim);
        for (int i = 0; i < 60; ++i) bytes += static_cast<char>(random());
        liars.emplace_back(coordinator.port()).sendBytes(bytes);
    }
    coordinator.expectServes();  // a round trip after the lies: the coordinator has read them
    const int64_t after_kb = coordinator.status("VmRSS");
    // Before the fix each claim reserved its full size (RSS +370 MiB over three of them).
    EXPECT_LT(after_kb - before_kb, 16 * 1024) << before_kb << " kB -> " << after_kb << " kB";
    EXPECT_EQ(coordinator.stop(), 0);
}

TEST(ControlCoordinatorProcess, DropsHalfAFrameAfterItsReadTimeout) {
    Coordinator coordinator({"--read-timeout-ms", "500"});
    RawClient raw(coordinator.port());
    raw.sendBytes(header(1000) + R"({"op":"hello")");
    coordinator.expectServes();  // while the half frame hangs
    const json reply = raw.reply();
    EXPECT_EQ(reply.at("code"), "timeout");
    EXPECT_TRUE(contains(reply.at("error"), "no complete frame within 500 ms")) << reply.dump();
    EXPECT_TRUE(raw.closedByServer());
    coordinator.expectServes();
    EXPECT_EQ(coordinator.stop(), 0);
}

TEST(ControlCoordinatorProcess, ClampsAWaitOf2To62Milliseconds) {
    Coordinator coordinator({"--max-call-timeout-ms", "300"});
    TcpStoreClient client("127.0.0.1", coordinator.port(), Ms(5000));
    const std::string message =
        expectError([&] { client.wait("never", Ms(int64_t{1} << 62)); }, Errc::kTimeout);
    EXPECT_TRUE(contains(message, "timed out after 300 ms")) << message;
    EXPECT_TRUE(contains(message, "asked 4611686018427387904 ms")) << message;
    EXPECT_EQ(coordinator.stop(), 0);
}

TEST(ControlCoordinatorProcess, CapsIdleConnectionsWithoutAThreadEach) {
    Coordinator coordinator({"--max-connections", "32"});
    coordinator.expectServes();
    const int64_t threads = coordinator.status("Threads");
    std::list<RawClient> idle;
    for (int i = 0; i < 32; ++i) {
        idle.emplace_back(coordinator.port());
        EXPECT_TRUE(idle.back().call({{"op", "hello"}, {"id", i}}).at("ok").get<bool>());
    }
    EXPECT_EQ(coordinator.status("Threads"), threads);
    RawClient refused(coordinator.port());
    const json reply = refused.reply();
    EXPECT_TRUE(contains(reply.at("error"), "too many connections (the coordinator allows 32)"))
        << reply.dump();
    EXPECT_TRUE(refused.closedByServer());
    idle.clear();
    for (int i = 0; i < 200; ++i) {  // the coordinator notices the closes on its next pass
        try {
            coordinator.expectServes();
            break;
        } catch (const Error &) {
            std::this_thread::sleep_for(Ms(10));
        }
    }
    coordinator.expectServes();
    EXPECT_EQ(coordinator.stop(), 0);
}

}  // namespace
}  // namespace weightsync::control

// Authenticated jobs (docs/security.md) against the real coordinator process.
namespace weightsync::control {
namespace {

/// A secret file in the test's temporary directory.
std::string secretFile(const std::string &name, const std::string &secret) {
    const auto path = std::filesystem::temp_directory_path() /
                      (name + "-" + std::to_string(::getpid()) + ".secret");
    std::ofstream(path) << secret << "\n";
    return path.string();
}

TEST(ControlCoordinatorProcess, AnAuthenticatedJobRefusesClientsWithoutTheSecret) {
    const std::string secret = "0123456789abcdef0123456789abcdef";
    Coordinator coordinator({"--job-secret-file", secretFile("auth", secret)});
    const auto key = std::make_shared<const JobSecret>(secret);
    TcpStoreClient member("127.0.0.1", coordinator.port(), Ms(5000), Ms(10000), key);
    member.set("job/memory/e0r0", "descriptor");
    EXPECT_EQ(member.get("job/memory/e0r0"), "descriptor");

    // No secret: connected (hello), but nothing read or written.
    TcpStoreClient stranger("127.0.0.1", coordinator.port(), Ms(5000));
    auto message =
        expectError([&] { (void)stranger.get("job/memory/e0r0"); }, Errc::kUnauthenticated);
    EXPECT_TRUE(contains(message, "no MAC of the job secret")) << message;
    expectError([&] { stranger.set("job/memory/e0r0", "forged"); }, Errc::kUnauthenticated);
    expectError([&] { (void)stranger.list(""); }, Errc::kUnauthenticated);
    expectError([&] { (void)stranger.watch("", 0, Ms(10)); }, Errc::kUnauthenticated);

    // A wrong secret: refused the same way.
    TcpStoreClient wrong("127.0.0.1", coordinator.port(), Ms(5000), Ms(10000),
                         std::make_shared<const JobSecret>("not the job's secret at all"));
    message = expectError([&] { wrong.set("job/memory/e0r0", "forged"); }, Errc::kUnauthenticated);
    EXPECT_TRUE(contains(message, "does not match the job secret")) << message;

    EXPECT_EQ(member.get("job/memory/e0r0"), "descriptor");  // nothing was written
    EXPECT_TRUE(coordinator.alive());
    EXPECT_EQ(coordinator.stop(), 0);
}

TEST(ControlCoordinatorProcess, AReplayedFrameIsRefused) {
    const std::string secret = "fedcba9876543210fedcba9876543210";
    Coordinator coordinator({"--job-secret-file", secretFile("replay", secret)});
    const JobSecret key(secret);
    RawClient client(coordinator.port());
    const json hello = client.call({{"op", "hello"}, {"version", 1}, {"id", 1}});
    ASSERT_TRUE(hello.value("ok", false)) << hello.dump();
    const std::string nonce = hello.at("nonce").get<std::string>();
    json request = {{"op", "set"}, {"key", "k"}, {"value", "dg=="}, {"id", 2}, {"seq", 1}};
    request["mac"] = toHex(key.mac(requestMacInput(nonce, request.dump())));
    EXPECT_TRUE(client.call(request).value("ok", false));
    // The same frame again, on the same connection: its counter was used.
    json reply = client.call(request);
    EXPECT_EQ(reply.value("code", ""), "unauthenticated") << reply.dump();
    EXPECT_TRUE(contains(reply.value("error", ""), "replayed")) << reply.dump();
    // On another connection (another nonce): the MAC does not match.
    RawClient other(coordinator.port());
    (void)other.call({{"op", "hello"}, {"version", 1}, {"id", 1}});
    reply = other.call(request);
    EXPECT_EQ(reply.value("code", ""), "unauthenticated") << reply.dump();
    // A changed field under the old MAC: refused.
    request["seq"] = 2;
    request["value"] = "eA==";
    reply = client.call(request);
    EXPECT_EQ(reply.value("code", ""), "unauthenticated") << reply.dump();
    EXPECT_EQ(coordinator.stop(), 0);
}

}  // namespace
}  // namespace weightsync::control
