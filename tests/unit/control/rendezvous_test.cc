// Barriers, all-gather, waitAll, PrefixStore and the coordinator entry point.

#include "control/barrier.h"
#include "control/coordinator.h"
#include "control/memory_store.h"
#include "control/prefix_store.h"
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

TEST(ControlBarrier, ReleasesNobodyBeforeTheLastRankArrives) {
    TcpStoreServer server;
    constexpr int kWorld = 8;
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> entered(kWorld), left(kWorld);
    onRanks(server, kWorld, [&](int rank, Store &store) {
        std::this_thread::sleep_for(Ms(10 * rank));
        {
            std::lock_guard lock(mutex);
            entered[rank] = std::chrono::steady_clock::now();
        }
        barrier(store, "step/1/pushed", kWorld, rank, Ms(5000));
        std::lock_guard lock(mutex);
        left[rank] = std::chrono::steady_clock::now();
    });
    const auto last_entry = *std::max_element(entered.begin(), entered.end());
    for (int rank = 0; rank < kWorld; ++rank) EXPECT_GE(left[rank], last_entry) << rank;
}

TEST(ControlBarrier, VersionedNamesPairStepByStep) {
    TcpStoreServer server;
    constexpr int kWorld = 4;
    std::atomic<int> passed{0};
    onRanks(server, kWorld, [&](int rank, Store &store) {
        for (int version = 0; version < 5; ++version) {
            barrier(store, "v/" + std::to_string(version), kWorld, rank, Ms(5000));
            ++passed;
        }
    });
    EXPECT_EQ(passed.load(), kWorld * 5);
    EXPECT_EQ(server.store()->get("v/4/count"), "4");
}

TEST(ControlBarrier, TimeoutNamesMissingRanks) {
    TcpStoreServer server;
    std::mutex mutex;
    std::vector<std::string> messages;
    onRanks(server, 4, [&](int rank, Store &store) {
        if (rank == 2) return;  // the straggler never arrives
        const auto message =
            expectError([&] { barrier(store, "step/3/done", 4, rank, Ms(300)); }, Errc::kTimeout);
        std::lock_guard lock(mutex);
        messages.push_back(message);
    });
    ASSERT_EQ(messages.size(), 3U);
    for (const auto &message : messages) {
        EXPECT_NE(message.find("barrier 'step/3/done' timed out after 300 ms: 3 of 4 arrived; "
                               "missing ranks: [2]"),
                  std::string::npos)
            << message;
    }
}

TEST(ControlBarrier, ReuseAndBadArgumentsAreErrors) {
    MemoryStore store;
    EXPECT_NO_THROW(barrier(store, "solo", 1, 0, Ms(100)));
    const auto twice = expectError([&] { barrier(store, "solo", 1, 0, Ms(100)); }, Errc::kProtocol);
    EXPECT_NE(twice.find("twice"), std::string::npos) << twice;
    expectError([&] { barrier(store, "c", 2, 2, Ms(100)); }, Errc::kInvalidArgument);
    expectError([&] { barrier(store, "c", 0, 0, Ms(100)); }, Errc::kInvalidArgument);
    // Ranks that disagree on the world size: a 2-rank peer already arrived at a 1-rank barrier.
    store.set("d/rank/1", "1");
    store.add("d/count", 1);
    const auto extra = expectError([&] { barrier(store, "d", 1, 0, Ms(100)); }, Errc::kProtocol);
    EXPECT_NE(extra.find("2 arrivals for world size 1"), std::string::npos) << extra;
}

TEST(ControlAllGather, EveryRankSeesEveryPayload) {
    TcpStoreServer server;
    constexpr int kWorld = 5;
    std::mutex mutex;
    std::vector<std::vector<std::string>> results;
    onRanks(server, kWorld, [&](int rank, Store &store) {
        auto all = allGather(store, "init/round1", kWorld, rank, "payload-" + std::to_string(rank),
                             Ms(5000));
        std::lock_guard lock(mutex);
        results.push_back(std::move(all));
    });
    ASSERT_EQ(results.size(), static_cast<size_t>(kWorld));
    for (const auto &all : results) {
        ASSERT_EQ(all.size(), static_cast<size_t>(kWorld));
        for (int rank = 0; rank < kWorld; ++rank)
            EXPECT_EQ(all[rank], "payload-" + std::to_string(rank));
    }
}

TEST(ControlAllGather, TimeoutNamesMissingRanks) {
    MemoryStore store;
    store.set("g/1", "x");
    const auto message =
        expectError([&] { allGather(store, "g", 4, 0, "y", Ms(100)); }, Errc::kTimeout);
    EXPECT_NE(message.find("2 of 4 arrived; missing ranks: [2, 3]"), std::string::npos) << message;
}

TEST(ControlWaitAll, ReturnsValuesInOrderOrNamesMissingKeys) {
    MemoryStore store;
    store.set("b", "2");
    store.set("a", "1");
    EXPECT_EQ(waitAll(store, {"a", "b"}, Ms(100)), (std::vector<std::string>{"1", "2"}));
    std::string message;
    const auto ms = timedMs([&] {
        message = expectError(
            [&] {
                waitAll(store, {"a", "x", "b", "y"}, Ms(150));
            },
            Errc::kTimeout);
    });
    EXPECT_LT(ms, 1000);
    EXPECT_NE(message.find("2 of 4 keys: ['x', 'y']"), std::string::npos) << message;
}

TEST(ControlWaitAll, FormatRanksTruncates) {
    EXPECT_EQ(formatRanks({}), "[]");
    EXPECT_EQ(formatRanks({1, 2, 3}), "[1, 2, 3]");
    EXPECT_EQ(formatRanks({1, 2, 3, 4}, 2), "[1, 2, ... (2 more)]");
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

TEST(ControlPrefixStore, BarrierOverTcpInsideANamespace) {
    TcpStoreServer server;
    onRanks(server, 3, [&](int rank, Store &client) {
        std::shared_ptr<Store> shared(&client, [](Store *) {});
        PrefixStore job("job-7", shared);
        barrier(job, "v/1", 3, rank, Ms(5000));
    });
    EXPECT_EQ(server.store()->get("job-7/v/1/count"), "3");
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
