// Every Store method, run against MemoryStore, TcpStoreClient <-> TcpStoreServer, and EtcdStore
// against a real etcd server (skipped when etcd is not installed).

#include "control/connect.h"
#include "control/memory_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "support/etcd_server.h"
#include "unit/control/control_test_util.h"

#include <algorithm>
#include <memory>
#include <set>
#include <thread>

namespace weightsync::control {
namespace {

using testing::backendName;
using testing::expectError;
using testing::Ms;
using testing::timedMs;

using testing::Backend;

class ControlStoreContract : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        memory_ = std::make_shared<MemoryStore>();
        if (GetParam() == Backend::kTcp) server_ = std::make_unique<TcpStoreServer>();
        if (GetParam() == Backend::kEtcd) {
            WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
            etcd_ = std::make_unique<weightsync::testing::EtcdServer>();
            ASSERT_TRUE(etcd_->ready());
        }
        store_ = connect();
    }

    /// A new handle on the same store: its own connection for TCP and etcd, the shared object
    /// in memory.
    std::shared_ptr<Store> connect() {
        if (GetParam() == Backend::kMemory) return memory_;
        if (GetParam() == Backend::kEtcd) return openStore(etcd_->address(), Ms(5000));
        return std::make_shared<TcpStoreClient>("127.0.0.1", server_->port(), Ms(2000));
    }

    std::shared_ptr<MemoryStore> memory_;
    std::unique_ptr<TcpStoreServer> server_;
    std::unique_ptr<weightsync::testing::EtcdServer> etcd_;
    std::shared_ptr<Store> store_;
};

TEST_P(ControlStoreContract, SetGetOverwriteAndAbsent) {
    EXPECT_EQ(store_->get("missing"), std::nullopt);
    store_->set("k", "v1");
    EXPECT_EQ(store_->get("k"), "v1");
    store_->set("k", "v2");
    EXPECT_EQ(store_->get("k"), "v2");
    store_->set("empty", "");
    EXPECT_EQ(store_->get("empty"), "");
}

TEST_P(ControlStoreContract, BinaryValuesRoundTrip) {
    std::string value;
    for (int i = 0; i < 256; ++i) value += static_cast<char>(i);
    value += std::string("\0\xff\xfe", 3);
    store_->set("bin", value);
    EXPECT_EQ(store_->get("bin"), value);
    EXPECT_EQ(store_->wait("bin", Ms(100)), value);
    EXPECT_EQ(store_->list("bin").at(0).value, value);
}

TEST_P(ControlStoreContract, WaitReturnsExistingValue) {
    store_->set("ready", "yes");
    EXPECT_EQ(store_->wait("ready", Ms(0)), "yes");
    EXPECT_EQ(store_->wait("ready", Ms(1000)), "yes");
}

TEST_P(ControlStoreContract, WaitBlocksUntilAnotherClientSets) {
    auto writer = connect();
    std::thread thread([&] {
        std::this_thread::sleep_for(Ms(50));
        writer->set("late", "value");
    });
    EXPECT_EQ(store_->wait("late", Ms(5000)), "value");
    thread.join();
}

TEST_P(ControlStoreContract, WaitTimesOutPromptly) {
    std::string message;
    const auto ms = timedMs(
        [&] { message = expectError([&] { store_->wait("never", Ms(150)); }, Errc::kTimeout); });
    EXPECT_GE(ms, 140);
    EXPECT_LT(ms, 1000);
    EXPECT_NE(message.find("'never'"), std::string::npos) << message;
}

TEST_P(ControlStoreContract, CompareSetSemantics) {
    EXPECT_FALSE(store_->compareSet("cas", std::string("x"), "y"));  // absent != "x"
    EXPECT_EQ(store_->get("cas"), std::nullopt);
    EXPECT_TRUE(store_->compareSet("cas", std::nullopt, "first"));  // absent == nullopt
    EXPECT_FALSE(store_->compareSet("cas", std::nullopt, "second"));
    EXPECT_EQ(store_->get("cas"), "first");
    EXPECT_FALSE(store_->compareSet("cas", std::string("wrong"), "third"));
    EXPECT_EQ(store_->get("cas"), "first");
    EXPECT_TRUE(store_->compareSet("cas", std::string("first"), "fourth"));
    EXPECT_EQ(store_->get("cas"), "fourth");
    EXPECT_TRUE(store_->compareSet("cas", std::string("fourth"), ""));
    EXPECT_TRUE(store_->compareSet("cas", std::string(""), "fifth"));
    EXPECT_EQ(store_->get("cas"), "fifth");
}

TEST_P(ControlStoreContract, CompareSetWakesWaiters) {
    auto writer = connect();
    std::thread thread([&] {
        std::this_thread::sleep_for(Ms(50));
        EXPECT_TRUE(writer->compareSet("leader", std::nullopt, "rank3"));
    });
    EXPECT_EQ(store_->wait("leader", Ms(5000)), "rank3");
    thread.join();
}

TEST_P(ControlStoreContract, AddCountsFromZero) {
    EXPECT_EQ(store_->add("n", 1), 1);
    EXPECT_EQ(store_->add("n", 5), 6);
    EXPECT_EQ(store_->add("n", -10), -4);
    EXPECT_EQ(store_->add("n", 0), -4);
    EXPECT_EQ(store_->get("n"), "-4");
    store_->set("m", "41");
    EXPECT_EQ(store_->add("m", 1), 42);
}

TEST_P(ControlStoreContract, AddOnNonIntegerFailsWithSameErrc) {
    store_->set("text", "hello");
    const auto message = expectError([&] { store_->add("text", 1); }, Errc::kInvalidArgument);
    EXPECT_NE(message.find("not an integer"), std::string::npos) << message;
    EXPECT_EQ(message.find("invalid argument: invalid argument"), std::string::npos) << message;
    store_->set("big", "9223372036854775807");
    expectError([&] { store_->add("big", 1); }, Errc::kInvalidArgument);
    EXPECT_EQ(store_->get("text"), "hello");  // the connection stays usable
}

TEST_P(ControlStoreContract, AddIsAtomicAcrossThreads) {
    constexpr int kThreads = 8;
    constexpr int kAdds = 100;
    std::vector<std::vector<int64_t>> seen(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t, client = connect()] {
            for (int i = 0; i < kAdds; ++i) seen[t].push_back(client->add("counter", 1));
        });
    }
    for (auto &thread : threads) thread.join();
    std::set<int64_t> all;
    for (const auto &values : seen) all.insert(values.begin(), values.end());
    EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kAdds));  // every result distinct
    EXPECT_EQ(*all.rbegin(), kThreads * kAdds);
    EXPECT_EQ(store_->get("counter"), std::to_string(kThreads * kAdds));
}

TEST_P(ControlStoreContract, ListIsSortedAndScopedToPrefix) {
    store_->set("a/2", "two");
    store_->set("a/10", "ten");
    store_->set("a/1", "one");
    store_->set("b/1", "other");
    store_->set("a", "not under a/");
    const auto entries = store_->list("a/");
    ASSERT_EQ(entries.size(), 3U);
    EXPECT_EQ(entries[0].key, "a/1");
    EXPECT_EQ(entries[1].key, "a/10");
    EXPECT_EQ(entries[2].key, "a/2");
    EXPECT_EQ(entries[1].value, "ten");
    EXPECT_EQ(store_->list("").size(), 5U);
    EXPECT_TRUE(store_->list("zzz").empty());
}

TEST_P(ControlStoreContract, RevisionsAreStoreWideAndMonotonic) {
    store_->set("r/x", "1");
    store_->set("other", "1");
    store_->set("r/y", "1");
    auto entries = store_->list("r/");
    ASSERT_EQ(entries.size(), 2U);
    const uint64_t x = entries[0].revision;
    const uint64_t y = entries[1].revision;
    EXPECT_GT(x, 0U);
    EXPECT_EQ(y, x + 2);  // "other" took the revision in between
    store_->set("r/x", "2");
    store_->add("r/n", 1);
    EXPECT_TRUE(store_->compareSet("r/y", std::string("1"), "2"));
    entries = store_->list("r/");
    EXPECT_EQ(entries[0].revision, y + 2);  // r/n
    EXPECT_EQ(entries[1].revision, y + 1);  // r/x
    EXPECT_EQ(entries[2].revision, y + 3);  // r/y
}

TEST_P(ControlStoreContract, WatchReturnsWritesAfterRevision) {
    store_->set("w/old", "0");
    const uint64_t after = store_->list("w/").back().revision;
    auto writer = connect();
    std::thread thread([&] {
        std::this_thread::sleep_for(Ms(50));
        writer->set("elsewhere", "ignored");  // wakes the watcher but is not under the prefix
        std::this_thread::sleep_for(Ms(20));
        writer->set("w/new", "1");
    });
    const auto entries = store_->watch("w/", after, Ms(5000));
    thread.join();
    ASSERT_EQ(entries.size(), 1U);
    EXPECT_EQ(entries[0].key, "w/new");
    EXPECT_EQ(entries[0].value, "1");
    EXPECT_GT(entries[0].revision, after);
    // Older revision: returns at once with everything newer, sorted by key.
    const auto all = store_->watch("w/", 0, Ms(0));
    ASSERT_EQ(all.size(), 2U);
    EXPECT_EQ(all[0].key, "w/new");
    EXPECT_EQ(all[1].key, "w/old");
}

TEST_P(ControlStoreContract, WatchTimesOutPromptly) {
    store_->set("q/a", "1");
    const uint64_t after = store_->list("q/").back().revision;
    store_->set("elsewhere", "1");
    const auto ms = timedMs([&] {
        const auto message =
            expectError([&] { store_->watch("q/", after, Ms(150)); }, Errc::kTimeout);
        EXPECT_NE(message.find("'q/'"), std::string::npos) << message;
    });
    EXPECT_GE(ms, 140);
    EXPECT_LT(ms, 1000);
}

TEST_P(ControlStoreContract, EraseRemovesKey) {
    store_->set("gone", "x");
    store_->erase("gone");
    EXPECT_EQ(store_->get("gone"), std::nullopt);
    store_->erase("gone");  // absent: no error
    EXPECT_TRUE(store_->list("gone").empty());
    EXPECT_TRUE(store_->compareSet("gone", std::nullopt, "back"));
    expectError([&] { store_->wait("erased-never-set", Ms(20)); }, Errc::kTimeout);
}

TEST_P(ControlStoreContract, BlockedWaiterDoesNotBlockOthers) {
    auto waiter = connect();
    std::thread thread([&] { EXPECT_EQ(waiter->wait("slow", Ms(5000)), "done"); });
    std::this_thread::sleep_for(Ms(30));
    const auto ms = timedMs([&] {
        for (int i = 0; i < 20; ++i) store_->set("busy/" + std::to_string(i), "x");
        EXPECT_EQ(store_->list("busy/").size(), 20U);
    });
    EXPECT_LT(ms, 1000);
    store_->set("slow", "done");
    thread.join();
}

INSTANTIATE_TEST_SUITE_P(Backends, ControlStoreContract,
                         ::testing::Values(Backend::kMemory, Backend::kTcp, Backend::kEtcd),
                         [](const auto &param_info) { return backendName(param_info.param); });

}  // namespace
}  // namespace weightsync::control
