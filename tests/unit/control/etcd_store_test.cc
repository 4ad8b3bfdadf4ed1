// The etcd store's own behaviour against a real etcd server: addresses, last wills on leases
// (a killed or stopped owner loses its lease and a peer's executor writes the will; a withdrawn
// will is never executed), and etcd going away. The Store contract itself runs in
// store_contract_test.cc and store_liveness_test.cc.

#include "control/connect.h"
#include "support/etcd_server.h"
#include "unit/control/control_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

namespace weightsync::control {
namespace {

using testing::expectError;
using testing::Ms;

TEST(ControlEtcdAddress, BadAddressesAreRefusedByName) {
    WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
    for (const char *bad : {"etcd://", "etcd://host", "etcd://host:0", "etcd://host:99999",
                            "etcd://a:1,", "etcd://a:1/", "etcd://a:1/x/"}) {
        const auto message = expectError([&] { checkStoreAddress(bad); }, Errc::kInvalidArgument);
        EXPECT_TRUE(testing::contains(message, bad)) << message;
    }
    checkStoreAddress("etcd://a:1,b:2/root");
    checkStoreAddress("127.0.0.1:29600");
    expectError([&] { checkStoreAddress("nowhere"); }, Errc::kInvalidArgument);
}

TEST(ControlEtcdAddress, NothingListeningFailsAfterTheConnectTimeout) {
    WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
    const auto message =
        expectError([] { (void)openStore("etcd://127.0.0.1:1", Ms(300)); }, Errc::kPeerLost);
    EXPECT_TRUE(testing::contains(message, "127.0.0.1:1")) << message;
}

/// A second process that holds a will in etcd: it reports "held" on its pipe once the will is
/// in place, then "released" if its keep-alive learns that the lease expired.
class WillHolder {
  public:
    WillHolder(const std::string &address, const std::string &key) {
        int fds[2];
        EXPECT_EQ(::pipe(fds), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(fds[0]);
            int code = 0;
            try {
                auto store = openStore(address, Ms(5000));
                auto will = store->lastWill(key, "gone", Ms(1000));
                (void)!::write(fds[1], "h", 1);
                while (will->held()) std::this_thread::sleep_for(Ms(20));
                (void)!::write(fds[1], "r", 1);
                std::this_thread::sleep_for(std::chrono::hours(1));
            } catch (...) {
                code = 2;
            }
            ::_exit(code);
        }
        ::close(fds[1]);
        fd_ = fds[0];
    }
    ~WillHolder() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(fd_);
    }
    WillHolder(const WillHolder &) = delete;
    WillHolder &operator=(const WillHolder &) = delete;

    /// The next byte the holder reports ('h', 'r'), or 0 on EOF.
    char next() {
        char c = 0;
        return ::read(fd_, &c, 1) == 1 ? c : 0;
    }
    [[nodiscard]] pid_t pid() const { return pid_; }

  private:
    pid_t pid_ = -1;
    int fd_ = -1;
};

class ControlEtcdWill : public ::testing::Test {
  protected:
    void SetUp() override {
        WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
        etcd_ = std::make_unique<weightsync::testing::EtcdServer>();
        ASSERT_TRUE(etcd_->ready());
    }
    std::unique_ptr<weightsync::testing::EtcdServer> etcd_;
};

TEST_F(ControlEtcdWill, AKilledOwnerLosesItsLeaseAndAPeerWritesTheWill) {
    WillHolder holder(etcd_->address(), "lost/a");  // forked before this process has threads
    ASSERT_EQ(holder.next(), 'h');
    const auto observer = openStore(etcd_->address(), Ms(5000));
    EXPECT_FALSE(observer->get("lost/a"));
    ::kill(holder.pid(), SIGKILL);
    // The lease (1 s asked, etcd's minimum of 2 s granted) expires; the observer's executor
    // writes the will.
    EXPECT_EQ(observer->wait("lost/a", Ms(10'000)), "gone");
}

TEST_F(ControlEtcdWill, AStoppedOwnerIsDeclaredGoneAndLearnsIt) {
    WillHolder holder(etcd_->address(), "lost/b");
    ASSERT_EQ(holder.next(), 'h');
    const auto observer = openStore(etcd_->address(), Ms(5000));
    ::kill(holder.pid(), SIGSTOP);
    EXPECT_EQ(observer->wait("lost/b", Ms(10'000)), "gone");
    ::kill(holder.pid(), SIGCONT);
    EXPECT_EQ(holder.next(), 'r');  // its next keep-alive finds the lease expired
}

TEST_F(ControlEtcdWill, KeptAliveAndWithdrawnIsNeverExecuted) {
    const auto store = openStore(etcd_->address(), Ms(5000));
    const auto observer = openStore(etcd_->address(), Ms(5000));
    {
        const auto will = store->lastWill("lost/c", "c", Ms(1000));
        std::this_thread::sleep_for(Ms(3000));  // past the lease's 2 s: the keep-alives hold it
        EXPECT_TRUE(will->held());
        EXPECT_FALSE(observer->get("lost/c"));
        will->withdraw();
    }
    std::this_thread::sleep_for(Ms(500));
    EXPECT_FALSE(observer->get("lost/c"));
}

TEST_F(ControlEtcdWill, DroppedWithoutWithdrawingIsExecuted) {
    const auto store = openStore(etcd_->address(), Ms(5000));
    (void)store->lastWill("lost/d", "d", Ms(60'000));
    EXPECT_EQ(store->wait("lost/d", Ms(5000)), "d");
    expectError([&] { (void)store->lastWill("lost/e", "e", Ms(0)); }, Errc::kInvalidArgument);
}

TEST_F(ControlEtcdWill, EtcdKilledWhileAClientWaitsIsPeerLost) {
    const auto store = openStore(etcd_->address(), Ms(5000));
    std::thread killer([&] {
        std::this_thread::sleep_for(Ms(200));
        ::kill(etcd_->pid(), SIGKILL);
    });
    const auto message =
        expectError([&] { (void)store->wait("never", Ms(10'000)); }, Errc::kPeerLost);
    killer.join();
    EXPECT_TRUE(testing::contains(message, "etcd")) << message;
}

}  // namespace
}  // namespace weightsync::control
