// The whole job on etcd instead of the built-in coordinator: `weightsync demo --store etcd://...`
// against a real etcd server (skipped without Debian's etcd-server): every version verified on
// every inference rank, and the job's keys gone from etcd afterwards.

#include "control/connect.h"
#include "support/etcd_server.h"
#include "support/weightsync_bin.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace weightsync {
namespace {

TEST(EtcdDemo, AWholeJobOnEtcdVerifiesEveryVersion) {
    WEIGHTSYNC_REQUIRE_ETCD();
    testing::EtcdServer etcd;
    ASSERT_TRUE(etcd.ready());
    const std::string address = etcd.address("ws");
    const std::string cmd = testing::weightsyncBin() +
                            " demo --json --timeout 60 --steps 3 --store " + address + " 2>&1";
    std::string output;
    FILE *pipe = ::popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) output += buf.data();
    const int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
    EXPECT_NE(output.find("on " + address), std::string::npos) << output;  // no coordinator
    const size_t last = output.rfind("\n{");
    ASSERT_NE(last, std::string::npos) << output;
    const auto json = nlohmann::json::parse(output.substr(last + 1), nullptr, false);
    ASSERT_TRUE(json.is_object()) << output;
    EXPECT_TRUE(json.at("verified").get<bool>()) << output;
    EXPECT_EQ(json.at("steps").get<int>(), 3);
    EXPECT_EQ(json.at("mismatched_bytes").get<int64_t>(), 0);
    EXPECT_GT(json.at("wire_bytes").get<int64_t>(), 0);
    EXPECT_EQ(json.at("checked_bytes").get<int64_t>(), json.at("wire_bytes").get<int64_t>());
    // The demo's namespace was erased; every agent left cleanly, so no will was executed.
    const auto store = control::openStore(address, std::chrono::seconds(5));
    EXPECT_TRUE(store->list("").empty());
}

}  // namespace
}  // namespace weightsync
