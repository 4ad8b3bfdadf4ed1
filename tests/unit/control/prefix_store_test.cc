// PrefixStore (a job's namespace) and the coordinator entry point.

#include "control/prefix_store.h"
#include "control/coordinator.h"
#include "control/memory_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "unit/control/control_test_util.h"

#include <future>
#include <mutex>
#include <thread>

namespace weightsync::control {
namespace {

using testing::expectError;
using testing::Ms;
using testing::timedMs;

/// Runs fn(rank, store) on world threads, each with its own client of server.
void onRanks(const TcpStoreServer &server, int world, const std::function<void(int, Store &)> &fn) {
    std::vector<std::thread> threads;
    for (int rank = 0; rank < world; ++rank) {
        threads.emplace_back([&, rank] {
            TcpStoreClient client("127.0.0.1", server.port(), Ms(2000));
            fn(rank, client);
        });
    }
    for (auto &thread : threads) thread.join();
}

TEST(ControlPrefixStore, NamespacesAreIsolated) {
    auto inner = std::make_shared<MemoryStore>();
    PrefixStore job1("job1", inner);
    PrefixStore job2("job2", inner);
    job1.set("k", "one");
    job2.set("k", "two");
    EXPECT_EQ(job1.get("k"), "one");
    EXPECT_EQ(job2.get("k"), "two");
    EXPECT_EQ(inner->get("job1/k"), "one");
    EXPECT_EQ(job1.add("n", 3), 3);
    EXPECT_TRUE(job1.compareSet("c", std::nullopt, "x"));
    EXPECT_EQ(job2.get("c"), std::nullopt);
    const auto entries = job1.list("");
    ASSERT_EQ(entries.size(), 3U);
    EXPECT_EQ(entries[0].key, "c");
    EXPECT_EQ(entries[1].key, "k");
    EXPECT_EQ(job1.wait("k", Ms(10)), "one");
    const auto watched = job2.watch("", 0, Ms(10));
    ASSERT_EQ(watched.size(), 1U);
    EXPECT_EQ(watched[0].key, "k");
    job1.erase("k");
    EXPECT_EQ(job1.get("k"), std::nullopt);
    EXPECT_EQ(job2.get("k"), "two");
    expectError([&] { PrefixStore bad("", inner); }, Errc::kInvalidArgument);
}

TEST(ControlPrefixStore, RanksMeetOverTcpInsideANamespace) {
    TcpStoreServer server;
    onRanks(server, 3, [&](int rank, Store &client) {
        std::shared_ptr<Store> shared(&client, [](Store *) {});
        PrefixStore job("job-7", shared);
        job.set("ready/" + std::to_string(rank), "yes");
        for (int r = 0; r < 3; ++r)
            EXPECT_EQ(job.wait("ready/" + std::to_string(r), Ms(5000)), "yes");
        EXPECT_EQ(job.list("ready/").size(), 3U);
    });
    EXPECT_EQ(server.store()->list("job-7/ready/").size(), 3U);
    EXPECT_TRUE(server.store()->list("ready/").empty());
}

TEST(ControlCoordinator, ServesUntilStopFlag) {
    std::atomic<bool> stop{false};
    std::promise<int> ready;
    std::thread coordinator([&] {
        EXPECT_EQ(runCoordinator("127.0.0.1", 0, stop, [&](int port) { ready.set_value(port); }),
                  0);
    });
    const int port = ready.get_future().get();
    TcpStoreClient client("127.0.0.1", port, Ms(2000));
    client.set("k", "v");
    EXPECT_EQ(client.get("k"), "v");
    stop = true;
    const auto ms = timedMs([&] { coordinator.join(); });
    EXPECT_LT(ms, 1000);
    expectError([&] { client.get("k"); }, Errc::kPeerLost);
}

}  // namespace
}  // namespace weightsync::control
