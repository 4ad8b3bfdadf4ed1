// Every value of an authenticated job carries the job secret's MAC: a forged value (a descriptor
// written without the secret, with another secret, or moved from another key) is refused by its
// reader before use, on the built-in store and on etcd alike.

#include "control/authenticated_store.h"
#include "control/connect.h"
#include "control/memory_store.h"
#include "control/prefix_store.h"
#include "unit/control/control_test_util.h"

namespace weightsync::control {
namespace {

using testing::contains;
using testing::expectError;
using testing::Ms;

void expectForgeriesRefused(const std::shared_ptr<Store> &raw) {
    const auto secret = std::make_shared<const JobSecret>("0123456789abcdef0123456789abcdef");
    AuthenticatedStore job(secret, std::make_shared<PrefixStore>("job", raw));
    job.set("memory/e0r0", "descriptor");
    EXPECT_EQ(job.get("memory/e0r0"), "descriptor");
    EXPECT_EQ(job.wait("memory/e0r0", Ms(100)), "descriptor");
    EXPECT_TRUE(job.compareSet("outcome", std::nullopt, "commit"));
    EXPECT_FALSE(job.compareSet("outcome", std::nullopt, "abort"));
    EXPECT_TRUE(job.compareSet("outcome", std::string("commit"), "commit again"));
    EXPECT_EQ(job.add("n", 2), 2);
    EXPECT_EQ(job.add("n", 3), 5);

    // Written without the secret: refused, naming the key.
    raw->set("job/memory/e0r1", "forged descriptor");
    auto message = expectError([&] { (void)job.get("memory/e0r1"); }, Errc::kUnauthenticated);
    EXPECT_TRUE(contains(message, "'memory/e0r1'")) << message;
    expectError([&] { (void)job.wait("memory/e0r1", Ms(100)); }, Errc::kUnauthenticated);
    expectError([&] { (void)job.list("memory/"); }, Errc::kUnauthenticated);
    expectError([&] { (void)job.watch("memory/", 0, Ms(100)); }, Errc::kUnauthenticated);
    // Sealed with another secret.
    AuthenticatedStore other(std::make_shared<const JobSecret>("another secret, 16+ bytes"),
                             std::make_shared<PrefixStore>("job", raw));
    other.set("memory/e0r1", "forged descriptor");
    expectError([&] { (void)job.get("memory/e0r1"); }, Errc::kUnauthenticated);
    // A genuine value moved to another key.
    raw->set("job/memory/e0r1", *raw->get("job/memory/e0r0"));
    expectError([&] { (void)job.get("memory/e0r1"); }, Errc::kUnauthenticated);
    EXPECT_EQ(job.get("memory/e0r0"), "descriptor");
}

TEST(ControlAuthenticatedStore, ForgedValuesAreRefusedInMemory) {
    expectForgeriesRefused(std::make_shared<MemoryStore>());
}

TEST(ControlAuthenticatedStore, ForgedValuesAreRefusedOnEtcd) {
    WEIGHTSYNC_REQUIRE_ETCD_BACKEND();
    weightsync::testing::EtcdServer etcd;
    ASSERT_TRUE(etcd.ready());
    expectForgeriesRefused(openStore(etcd.address(), Ms(5000)));
}

TEST(ControlAuthenticatedStore, SecretsAreChecked) {
    expectError([] { (void)JobSecret("short"); }, Errc::kInvalidArgument);
    expectError([] { (void)JobSecret::fromFile("/nonexistent/secret"); }, Errc::kIo);
    const auto a = JobSecret::generate();
    const auto b = JobSecret::generate();
    EXPECT_EQ(a->bytes().size(), 64U);
    EXPECT_NE(a->bytes(), b->bytes());
    EXPECT_TRUE(a->verify("m", a->mac("m")));
    EXPECT_FALSE(a->verify("m", b->mac("m")));
    EXPECT_FALSE(a->verify("n", a->mac("m")));
}

}  // namespace
}  // namespace weightsync::control
