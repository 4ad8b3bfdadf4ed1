#include "transport/registry.h"
#include "support/expect_error.h"
#include "transport/fault/fault_backend.h"
#include "transport/ucx/ucx_backend.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace weightsync::transport {
namespace {

using weightsync::testing::codeOf;

TEST(TransportRegistry, MakesKnownBackends) {
    EXPECT_EQ(makeBackend("inproc", nullptr)->capabilities().name, "inproc");
    const auto ucx = makeBackend("ucx", {{"transports", "posix,sysv,self"}});
    EXPECT_EQ(ucx->capabilities().name, "ucx");
    EXPECT_TRUE(ucx->capabilities().host_memory);
    EXPECT_TRUE(ucx->capabilities().needs_target_progress);
    EXPECT_FALSE(ucx->address().empty());
}

TEST(TransportRegistry, RejectsUnknownNamesAndOptions) {
    EXPECT_EQ(codeOf([] { makeBackend("rdma", nullptr); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { makeBackend("inproc", {{"x", 1}}); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { makeBackend("ucx", {{"transport", "tcp"}}); }), Errc::kInvalidArgument);
}

// allocateMemory is optional: inproc has nothing better than the caller's memory, the fault
// decorator forwards to the backend it wraps, and UCX offers shared memory when it can.
TEST(TransportRegistry, AllocateMemoryIsOptional) {
    EXPECT_EQ(makeBackend("inproc", nullptr)->allocateMemory(4096, MemoryKind::kHost, -1), nullptr);
    FaultInjectingBackend over_inproc(makeBackend("inproc", nullptr), FaultPolicy{});
    EXPECT_EQ(over_inproc.allocateMemory(4096, MemoryKind::kHost, -1), nullptr);
    FaultInjectingBackend over_ucx(makeBackend("ucx", {{"transports", "posix,sysv,self"}}),
                                   FaultPolicy{});
    const auto region = over_ucx.allocateMemory(4096, MemoryKind::kHost, -1);
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(region->size(), 4096U);
    EXPECT_EQ(region->describe().backend, "ucx");
}

TEST(TransportUcxOptions, ParsesEveryField) {
    const auto options = UcxOptions::fromJson({{"transports", "tcp,self"},
                                               {"max_inflight_bytes", 1024},
                                               {"max_inflight_writes", 4},
                                               {"max_write_size", 512},
                                               {"wakeup", false},
                                               {"direct_copy", false},
                                               {"prefault_imports", false},
                                               {"post_timeout_ms", 250},
                                               {"config", {{"KEEPALIVE_INTERVAL", "1s"}}}});
    EXPECT_EQ(options.transports, "tcp,self");
    EXPECT_EQ(options.max_inflight_bytes, 1024U);
    EXPECT_EQ(options.max_inflight_writes, 4U);
    EXPECT_EQ(options.max_write_size, 512U);
    EXPECT_FALSE(options.wakeup);
    EXPECT_FALSE(options.direct_copy);
    EXPECT_FALSE(options.prefault_imports);
    EXPECT_EQ(options.post_timeout, std::chrono::milliseconds(250));
    EXPECT_EQ(options.config.at("KEEPALIVE_INTERVAL"), "1s");
    const auto defaults = UcxOptions::fromJson(nullptr);
    EXPECT_EQ(defaults.max_inflight_bytes, size_t{256} << 20);
    EXPECT_TRUE(defaults.wakeup);
    EXPECT_TRUE(defaults.direct_copy);
    EXPECT_TRUE(defaults.prefault_imports);
}

TEST(TransportUcxOptions, RejectsBadValues) {
    EXPECT_EQ(codeOf([] {
                  UcxOptions::fromJson({{"max_inflight_writes", 0}});
              }),
              Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] {
                  UcxOptions::fromJson({{"max_write_size", -1}});
              }),
              Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { UcxOptions::fromJson({{"wakeup", "yes"}}); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { UcxOptions::fromJson({{"direct_copy", 1}}); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] {
                  UcxOptions::fromJson({{"config", {{"UCX_TLS", "tcp"}}}});
              }),
              Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { UcxOptions::fromJson(nlohmann::json::array()); }),
              Errc::kInvalidArgument);
}

TEST(TransportUcxOptions, InvalidUcxSettingFailsCreation) {
    UcxOptions options;
    options.config["NO_SUCH_SETTING_EVER"] = "1";
    // UCX accepts unknown keys at modify time and warns later; a bad value of a known key fails.
    options.config = {{"KEEPALIVE_INTERVAL", "not-a-time"}};
    EXPECT_EQ(codeOf([&] { makeUcxBackend(options); }), Errc::kInvalidArgument);
}

// UCX 1.13 silently loses puts into registered memory with shared-memory segments of 64 KiB or
// more (16-bit message lengths); the backend refuses such settings.
TEST(TransportUcxOptions, RefusesSegmentSizesThatLoseWrites) {
    for (const auto &[key, value] : std::vector<std::pair<std::string, std::string>>{
             {"MM_SEG_SIZE", "65536"}, {"POSIX_SEG_SIZE", "64k"}, {"SYSV_SEG_SIZE", "1m"}}) {
        UcxOptions options;
        options.transports = "posix,sysv,self";
        options.config = {{key, value}};
        EXPECT_EQ(codeOf([&] { makeUcxBackend(options); }), Errc::kInvalidArgument)
            << key << "=" << value;
    }
    UcxOptions options;
    options.transports = "posix,sysv,self";
    options.config = {{"MM_SEG_SIZE", "16k"}};
    EXPECT_NO_THROW(makeUcxBackend(options));
}

}  // namespace
}  // namespace weightsync::transport
