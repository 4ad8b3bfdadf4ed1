// The coordinator's store server under hostile input, over real sockets: every probe of issue 14
// (deep nesting, frames that lie about their size, half a frame then silence, a 2^62 ms wait,
// many idle connections) plus malformed requests. Each test also checks that the server keeps
// serving a well-behaved client.

#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "unit/control/control_test_util.h"
#include "unit/control/raw_client.h"

#include <dirent.h>

#include <list>

namespace weightsync::control {
namespace {

using nlohmann::json;
using testing::contains;
using testing::expectError;
using testing::header;
using testing::Ms;
using testing::RawClient;

/// A TcpStoreClient still gets served.
void expectServes(const TcpStoreServer &server) {
    TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
    client.set("alive", "yes");
    EXPECT_EQ(client.get("alive"), "yes");
}

void waitForConnections(const TcpStoreServer &server, size_t count) {
    for (int i = 0; i < 1000 && server.connectionCount() != count; ++i) {
        std::this_thread::sleep_for(Ms(5));
    }
    EXPECT_EQ(server.connectionCount(), count);
}

size_t threadsOfThisProcess() {
    size_t n = 0;
    DIR *dir = ::opendir("/proc/self/task");
    if (dir == nullptr) return 0;
    while (const dirent *entry = ::readdir(dir)) n += entry->d_name[0] != '.' ? 1 : 0;
    ::closedir(dir);
    return n;
}

TEST(ControlHostile, DeeplyNestedIdIsRefusedAndTheConnectionServesOn) {
    TcpStoreServer server;
    RawClient raw(server.port());
    raw.sendBytes(header(0) + "");  // an empty frame first: not JSON
    EXPECT_EQ(raw.reply().at("code"), "protocol");
    const std::string deep = testing::deepIdRequest(100000);
    raw.sendBytes(encodeFrame(deep));
    const json reply = raw.reply();
    EXPECT_FALSE(reply.at("ok").get<bool>());
    EXPECT_EQ(reply.at("code"), "protocol");
    EXPECT_TRUE(contains(reply.at("error"), "nested deeper than 64 levels")) << reply.dump();
    EXPECT_TRUE(reply.at("id").is_null());
    // 63 levels inside the request object is within the limit, and is echoed back.
    const json ok = raw.call(json::parse(testing::deepIdRequest(63)));
    EXPECT_TRUE(ok.at("ok").get<bool>()) << ok.dump();
    EXPECT_EQ(ok.at("id"), json::parse(std::string(63, '[') + std::string(63, ']')));
    expectServes(server);
}

TEST(ControlHostile, MalformedRequestsGetErrorsAndTheConnectionServesOn) {
    TcpStoreServer server;
    RawClient raw(server.port());
    const auto error = [&](const std::string &payload) {
        raw.sendBytes(encodeFrame(payload));
        const json reply = raw.reply();
        EXPECT_FALSE(reply.at("ok").get<bool>()) << payload;
        return reply.at("code").get<std::string>() + ": " + reply.at("error").get<std::string>();
    };
    EXPECT_TRUE(contains(error("[1,2]"), "not an object"));
    EXPECT_TRUE(contains(error("{\"o"), "protocol: store request: not valid JSON"));
    EXPECT_TRUE(contains(error("{\"op\":\"set\",\"key\":\"\xff\"}"), "not valid JSON"));
    EXPECT_TRUE(contains(error(R"({"op":"set","id":1,"key":"k","value":"!!!!"})"),
                         "invalid base64 character"));
    EXPECT_TRUE(contains(error(R"({"op":"wait","id":2,"key":"k","timeout_ms":"soon"})"),
                         "timeout_ms must be a number"));
    EXPECT_TRUE(contains(error(R"({"op":"add","id":3,"key":"k","delta":1.5e300})"), "protocol"));
    EXPECT_TRUE(contains(error(R"({"op":"launch","id":4})"), "unknown store op 'launch'"));
    EXPECT_TRUE(raw.call({{"op", "hello"}, {"id", 5}, {"version", 1}}).at("ok").get<bool>());
    expectServes(server);
}

TEST(ControlHostile, FrameOverTheCapIsRefusedBeforeItArrives) {
    ServerLimits limits;
    limits.max_frame_bytes = 4096;
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    RawClient raw(server.port());
    raw.sendBytes(header(0xffffffffU) + "x");
    const json reply = raw.reply();
    EXPECT_TRUE(reply.at("id").is_null());
    EXPECT_EQ(reply.at("code"), "protocol");
    EXPECT_TRUE(
        contains(reply.at("error"), "a frame of 4294967295 bytes was announced; the limit is 4096"))
        << reply.dump();
    EXPECT_TRUE(raw.closedByServer());
    // A client whose request is over the server's cap loses the connection, told why.
    TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
    client.set("small", std::string(1000, 'x'));
    const std::string message =
        expectError([&] { client.set("big", std::string(8000, 'x')); }, Errc::kPeerLost);
    EXPECT_TRUE(contains(message, "the limit is 4096")) << message;
    expectServes(server);
}

TEST(ControlHostile, HalfAFrameThenSilenceIsClosedAfterTheReadTimeout) {
    ServerLimits limits;
    limits.read_timeout = Ms(300);
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    RawClient raw(server.port());
    raw.sendBytes(header(100) + std::string(10, '{'));
    expectServes(server);  // served while the half frame waits
    const json reply = raw.reply();
    EXPECT_TRUE(reply.at("id").is_null());
    EXPECT_EQ(reply.at("code"), "timeout");
    EXPECT_TRUE(contains(reply.at("error"), "no complete frame within 300 ms (14 bytes arrived)"))
        << reply.dump();
    EXPECT_TRUE(raw.closedByServer());
    raw.close();
    waitForConnections(server, 0);
}

TEST(ControlHostile, IdleConnectionWithoutAPartialFrameIsKept) {
    ServerLimits limits;
    limits.read_timeout = Ms(100);
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
    client.set("k", "v");
    std::this_thread::sleep_for(Ms(400));  // idle for 4 read timeouts: no partial frame, kept
    EXPECT_EQ(client.get("k"), "v");
}

TEST(ControlHostile, HugeWaitAndWatchTimeoutsAreClamped) {
    ServerLimits limits;
    limits.max_call_timeout = Ms(200);
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
    const Ms huge(int64_t{1} << 62);
    std::string message = expectError([&] { client.wait("never", huge); }, Errc::kTimeout);
    EXPECT_TRUE(contains(message, "wait for key 'never' timed out after 200 ms")) << message;
    EXPECT_TRUE(contains(message, "asked 4611686018427387904 ms")) << message;
    message = expectError([&] { client.watch("none/", 0, huge); }, Errc::kTimeout);
    EXPECT_TRUE(contains(message, "timed out after 200 ms")) << message;
    // A raw request with a negative or an unsigned 2^64-1 timeout is clamped the same way.
    RawClient raw(server.port());
    json reply = raw.call({{"op", "wait"}, {"id", 1}, {"key", "x"}, {"timeout_ms", -5}});
    EXPECT_TRUE(contains(reply.at("error"), "timed out after 0 ms")) << reply.dump();
    reply = raw.call(
        json::parse(R"({"op":"wait","id":2,"key":"x","timeout_ms":18446744073709551615})"));
    EXPECT_TRUE(contains(reply.at("error"), "timed out after 200 ms")) << reply.dump();
}

TEST(ControlHostile, ConnectionsOverTheCapAreRefusedCleanly) {
    ServerLimits limits;
    limits.max_connections = 4;
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    std::list<RawClient> idle;
    for (int i = 0; i < 4; ++i) idle.emplace_back(server.port());
    waitForConnections(server, 4);
    const std::string message = expectError(
        [&] { TcpStoreClient refused("127.0.0.1", server.port(), Ms(2000)); }, Errc::kPeerLost);
    EXPECT_TRUE(contains(message, "too many connections (the coordinator allows 4)")) << message;
    RawClient raw(server.port());
    const json reply = raw.reply();
    EXPECT_TRUE(reply.at("id").is_null());
    EXPECT_FALSE(reply.at("ok").get<bool>());
    EXPECT_TRUE(raw.closedByServer());
    EXPECT_EQ(server.connectionCount(), 4U);
    idle.pop_front();  // one leaves: a new client is served
    waitForConnections(server, 3);
    expectServes(server);
}

TEST(ControlHostile, IdleConnectionsCostNoThreads) {
    ServerLimits limits;
    limits.max_connections = 64;
    TcpStoreServer server("127.0.0.1", 0, nullptr, limits);
    const size_t threads = threadsOfThisProcess();
    std::list<RawClient> idle;
    for (int i = 0; i < 60; ++i) {
        idle.emplace_back(server.port());
        EXPECT_TRUE(idle.back().call({{"op", "hello"}, {"id", 1}}).at("ok").get<bool>());
    }
    EXPECT_EQ(server.connectionCount(), 60U);
    EXPECT_EQ(threadsOfThisProcess(), threads);
    // And as many parked waits cost none either.
    for (auto &raw : idle)
        raw.sendRequest({{"op", "wait"}, {"id", 2}, {"key", "go"}, {"timeout_ms", 60000}});
    expectServes(server);
    EXPECT_EQ(threadsOfThisProcess(), threads);
    server.store()->set("go", "now");
    for (auto &raw : idle) EXPECT_EQ(raw.reply().at("value"), wire::base64Encode("now"));
}

TEST(ControlHostile, PipelinedRequestsBehindAWaitAreAnsweredInOrder) {
    TcpStoreServer server;
    RawClient raw(server.port());
    raw.sendBytes(
        encodeFrame(json({{"op", "wait"}, {"id", 1}, {"key", "k"}, {"timeout_ms", 10000}}).dump()) +
        encodeFrame(json({{"op", "get"}, {"id", 2}, {"key", "k"}}).dump()));
    TcpStoreClient writer("127.0.0.1", server.port(), Ms(2000));
    writer.set("k", "v");
    const json first = raw.reply();
    const json second = raw.reply();
    EXPECT_EQ(first.at("id"), 1);
    EXPECT_EQ(first.at("value"), wire::base64Encode("v"));
    EXPECT_EQ(second.at("id"), 2);
    EXPECT_TRUE(second.at("found").get<bool>());
}

TEST(ControlHostile, InProcessWriteWakesAParkedWait) {
    TcpStoreServer server;
    TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
    std::thread writer([&] {
        waitForConnections(server, 1);
        std::this_thread::sleep_for(Ms(50));
        server.store()->set("k", "in-process");
    });
    EXPECT_EQ(client.wait("k", Ms(10000)), "in-process");
    writer.join();
}

TEST(ControlFrameReader, BuffersOnlyWhatArrivedAndRefusesOversizeHeaders) {
    FrameReader reader(1U << 20);
    reader.append(header(1000) + "abc");
    EXPECT_EQ(reader.buffered(), 7U);
    EXPECT_TRUE(reader.partial());
    EXPECT_EQ(reader.next(), std::nullopt);
    reader.append(std::string(997, 'x') + header(2));
    EXPECT_EQ(reader.next(), "abc" + std::string(997, 'x'));
    EXPECT_EQ(reader.next(), std::nullopt);
    reader.append("hi");
    EXPECT_EQ(reader.next(), "hi");
    EXPECT_FALSE(reader.partial());
    FrameReader small(1000);
    const std::string too_big = header(1001);
    small.append(too_big.substr(0, 2));
    const std::string message =
        expectError([&] { small.append(too_big.substr(2)); }, Errc::kProtocol);
    EXPECT_TRUE(contains(message, "a frame of 1001 bytes was announced; the limit is 1000"))
        << message;
}

}  // namespace
}  // namespace weightsync::control
