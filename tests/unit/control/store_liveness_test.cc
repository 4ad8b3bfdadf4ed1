// The store features the step protocol relies on to stay flat and to see failures fast:
// erasing a whole prefix, watches that visit only what changed, and last wills executed by the
// coordinator when a client's connection closes or falls silent. The etcd store runs the same
// store tests; its wills are tested in etcd_store_test.cc.

#include "control/connect.h"
#include "control/memory_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "unit/control/control_test_util.h"

#include <fmt/format.h>

#include <memory>
#include <thread>

namespace weightsync::control {
namespace {

using testing::expectError;
using testing::Ms;

using testing::Backend;

class ControlStoreGc : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        memory_ = std::make_shared<MemoryStore>();
        if (GetParam() == Backend::kTcp) {
            server_ = std::make_unique<TcpStoreServer>("127.0.0.1", 0, memory_);
            store_ = std::make_shared<TcpStoreClient>("127.0.0.1", server_->port(), Ms(2000));
        } else if (GetParam() == Backend::kEtcd) {
            WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
            etcd_ = std::make_unique<weightsync::testing::EtcdServer>();
            ASSERT_TRUE(etcd_->ready());
            store_ = openStore(etcd_->address(), Ms(5000));
        } else {
            store_ = memory_;
        }
    }
    std::shared_ptr<MemoryStore> memory_;
    std::unique_ptr<TcpStoreServer> server_;
    std::unique_ptr<weightsync::testing::EtcdServer> etcd_;
    std::shared_ptr<Store> store_;
};

TEST_P(ControlStoreGc, ErasePrefixErasesExactlyThePrefix) {
    for (const char *k : {"v/1/a", "v/1/b/c", "v/10/a", "v/2/a", "w"}) store_->set(k, "x");
    EXPECT_EQ(store_->erasePrefix("v/1/"), 2u);
    EXPECT_FALSE(store_->get("v/1/a"));
    EXPECT_FALSE(store_->get("v/1/b/c"));
    EXPECT_TRUE(store_->get("v/10/a"));
    EXPECT_TRUE(store_->get("v/2/a"));
    EXPECT_TRUE(store_->get("w"));
    EXPECT_EQ(store_->erasePrefix("v/1/"), 0u);
    // An erased key can be written again and is seen by watches.
    const uint64_t before = store_->list("w").at(0).revision;
    store_->set("v/1/a", "again");
    const auto changed = store_->watch("v/", before, Ms(100));
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0].key, "v/1/a");
}

TEST_P(ControlStoreGc, WatchReturnsOnlyWhatChangedSinceTheRevisionInKeyOrder) {
    for (int i = 0; i < 2000; ++i) store_->set(fmt::format("old/{:04}", i), "x");
    const uint64_t rev = store_->list("old/0000").at(0).revision;
    const uint64_t last_old = store_->list("old/1999").at(0).revision;
    store_->set("new/b", "2");
    store_->set("new/a", "1");
    store_->set("old/0005", "rewritten");
    const auto changed = store_->watch("", last_old, Ms(100));
    ASSERT_EQ(changed.size(), 3u);
    EXPECT_EQ(changed[0].key, "new/a");
    EXPECT_EQ(changed[1].key, "new/b");
    EXPECT_EQ(changed[2].key, "old/0005");
    EXPECT_EQ(changed[2].value, "rewritten");
    EXPECT_GT(changed[2].revision, last_old);
    // Under a prefix, and from an older revision.
    EXPECT_EQ(store_->watch("new/", rev, Ms(100)).size(), 2u);
    // Nothing newer: the watch blocks until its timeout.
    expectError([&] { (void)store_->watch("", changed[2].revision, Ms(50)); }, Errc::kTimeout);
}

INSTANTIATE_TEST_SUITE_P(Backends, ControlStoreGc,
                         ::testing::Values(Backend::kMemory, Backend::kTcp, Backend::kEtcd),
                         [](const ::testing::TestParamInfo<Backend> &param) {
                             std::string name = testing::backendName(param.param);
                             name[0] = static_cast<char>(std::tolower(name[0]));
                             return name;
                         });

class ControlLastWill : public ::testing::Test {
  protected:
    std::unique_ptr<TcpStoreClient> client() {
        return std::make_unique<TcpStoreClient>("127.0.0.1", server_.port(), Ms(2000));
    }
    /// Waits up to `timeout` for key to appear; its value or "".
    std::string waitFor(const std::string &key, Ms timeout) {
        try {
            return observer_->wait(key, timeout);
        } catch (const Error &) {
            return "";
        }
    }
    TcpStoreServer server_{"127.0.0.1", 0};
    std::unique_ptr<TcpStoreClient> observer_ = client();
};

TEST_F(ControlLastWill, ExecutedWhenTheConnectionCloses) {
    auto dying = client();
    dying->bindWill("lost/a", "a is gone", Ms(60'000));
    EXPECT_FALSE(observer_->get("lost/a"));
    dying.reset();  // the process ends: its socket closes
    EXPECT_EQ(waitFor("lost/a", Ms(5000)), "a is gone");
}

TEST_F(ControlLastWill, ExecutedWhenTheClientFallsSilent) {
    auto hung = client();
    hung->bindWill("lost/b", "b", Ms(300));
    EXPECT_EQ(waitFor("lost/b", Ms(5000)), "b");
    // The coordinator closed the silent connection: the client learns it on its next call.
    expectError([&] { hung->keepAlive(); }, Errc::kPeerLost);
}

TEST_F(ControlLastWill, KeptAliveAndWithdrawnIsNeverExecuted) {
    {
        const auto will = observer_->lastWill("lost/c", "c", Ms(200));
        std::this_thread::sleep_for(Ms(800));  // four ttls: the keep-alives hold it
        EXPECT_TRUE(will->held());
        EXPECT_FALSE(observer_->get("lost/c"));
        will->withdraw();  // a clean departure is not a loss
    }
    std::this_thread::sleep_for(Ms(400));
    EXPECT_FALSE(observer_->get("lost/c"));
}

TEST_F(ControlLastWill, DroppedWithoutWithdrawingIsExecuted) {
    // A process that exits on an error, destructors and all, is gone all the same.
    (void)observer_->lastWill("lost/f", "f", Ms(60'000));
    EXPECT_EQ(waitFor("lost/f", Ms(5000)), "f");
}

TEST_F(ControlLastWill, RefusesBadRequests) {
    auto c = client();
    expectError([&] { c->keepAlive(); }, Errc::kProtocol);  // no will on this connection
    expectError([&] { (void)observer_->lastWill("lost/d", "d", Ms(0)); }, Errc::kInvalidArgument);
}

TEST(ControlLastWillMemory, HeldAndNeverExecutedInOneProcess) {
    MemoryStore store;
    const auto will = store.lastWill("lost/e", "e", Ms(10));
    std::this_thread::sleep_for(Ms(50));
    EXPECT_TRUE(will->held());
    EXPECT_FALSE(store.get("lost/e"));
}

}  // namespace
}  // namespace weightsync::control
