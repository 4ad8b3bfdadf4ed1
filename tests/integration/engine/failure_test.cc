// Failure behaviour between real processes: a receiver killed mid-push, a layout or descriptor
// mismatch at init, and a coordinator that disappears. Nothing may hang; every error names its
// cause.

#include "engine/local_job.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "support/weightsync_bin.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace weightsync::engine {
namespace {

using nlohmann::json;
using protocol::inferenceName;
using namespace std::chrono_literals;
namespace keys = protocol::keys;

LocalJobOptions smallJob(int steps) {
    LocalJobOptions o;
    o.spec.model = "glm5-tiny";
    o.spec.mesh = {1, 4, 2};
    o.spec.fleet.engines = {{2, 1, 2, {}}, {2, 1, 2, {}}};
    o.spec.steps = steps;
    o.spec.transport_options = {{"transports", "posix,sysv,self"}};
    o.spec.step_timeout = 20s;
    o.spec.init_timeout = 20s;
    o.executable = testing::weightsyncBin();
    return o;
}

std::string readFile(const std::string &path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TEST(Failure, ReceiverKilledMidPush) {
    LocalJobOptions o = smallJob(3);
    o.spec.staging = true;
    o.spec.step_timeout = 10s;
    // Shared-memory UCX notices a dead peer through keepalive (20 s by default).
    o.spec.transport_options["config"] = {{"KEEPALIVE_INTERVAL", "1s"}};
    o.extra_args["inference-e1r0"] = {"--fault-die-at-version", "2"};
    LocalJob job(o);
    job.start();
    const auto start = std::chrono::steady_clock::now();
    const auto codes = job.supervise(60s);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Every wait is bounded by the step timeout (10 s); keepalive usually detects the dead peer
    // well before.
    EXPECT_LT(seconds, 15.0) << "agents must give up within their timeouts";
    EXPECT_EQ(codes.at("inference-e1r0"), 128 + 9);
    for (int t = 0; t < 4; ++t) {
        const std::string name = "trainer" + std::to_string(t);
        EXPECT_NE(codes.at(name), 0) << name;
        EXPECT_NE(codes.at(name), -1) << name << " hung";
        const std::string log = readFile(job.logOf(name));
        EXPECT_NE(log.find("e1r0"), std::string::npos) << name << " log does not name the peer:\n"
                                                       << log;
        for (const std::string survivor : {"e0r0", "e0r1", "e1r1"}) {
            EXPECT_EQ(log.find("peer(s) " + survivor), std::string::npos)
                << name << " blames a survivor:\n"
                << log;
        }
    }
    // Version 1 landed everywhere; version 2 never committed; the survivors hold version 1,
    // byte for byte (staged receivers: the live weights were never touched).
    for (const std::string peer : {"e0r0", "e0r1", "e1r1"}) {
        SCOPED_TRACE(peer);
        const auto v1 = job.store().get(keys::verified(1, peer));
        ASSERT_TRUE(v1);
        EXPECT_TRUE(json::parse(*v1).at("verified").get<bool>());
        EXPECT_FALSE(job.store().get(keys::resumed(2, peer)));
        const auto aborted = job.store().get(keys::aborted(2, inferenceName(peer)));
        ASSERT_TRUE(aborted) << "survivor did not report";
        const auto a = protocol::decode<protocol::Aborted>(*aborted, 2, "aborted");
        EXPECT_EQ(a.held, 1u);
        EXPECT_TRUE(a.intact);
        EXPECT_TRUE(a.serving);
        // Checked against version 1 where the rank paused for version 2; a rank that the
        // abort reached before version 2's request never touched its weights (-1: unchecked).
        if (job.store().get(keys::paused(2, peer))) {
            EXPECT_EQ(a.mismatched_bytes_vs_held, 0);
        } else {
            EXPECT_EQ(a.mismatched_bytes_vs_held, -1);
        }
        EXPECT_NE(codes.at("inference-" + peer), -1) << "hung";
    }
}

/// Returns the init failure's reason (empty if there was none: a failure is recorded).
std::string expectInitFailure(LocalJobOptions o, const std::string &needle) {
    LocalJob job(std::move(o));
    job.start();
    const auto codes = job.supervise(60s);
    for (const auto &[name, code] : codes) {
        EXPECT_NE(code, 0) << name << " should fail init";
        EXPECT_NE(code, -1) << name << " hung";
    }
    const auto why = job.store().get(keys::initFailed());
    if (!why) {
        ADD_FAILURE() << "no init failure was recorded";
        return {};
    }
    EXPECT_NE(why->find(needle), std::string::npos) << *why;
    // Nothing was written: no version was ever requested, paused for or pushed.
    EXPECT_TRUE(job.store().list("v/").empty());
    EXPECT_FALSE(job.store().get(keys::latest()));
    return *why;
}

TEST(Failure, LayoutMismatchAtInit) {
    LocalJobOptions o = smallJob(1);
    o.extra_args["inference-e0r1"] = {"--fault-model", "glm5-aligned"};
    expectInitFailure(o, "inference rank e0r1 serves a different layout");
}

TEST(Failure, DescriptorSizeMismatchAtInit) {
    LocalJobOptions o = smallJob(1);
    o.extra_args["inference-e1r1"] = {"--fault-shrink-tensor",
                                      "model.layers.1.mlp.experts.w2_weight_scale_inv"};
    expectInitFailure(o, "e1r1: 'model.layers.1.mlp.experts.w2_weight_scale_inv'");
}

// Issue 16: the nccl transport moves GPU memory only. A CPU job that names it (or any job, in a
// build without CUDA and NCCL) fails init on every agent at once, saying so; nothing waits.
TEST(Failure, NcclNeedsCudaFailsInitEverywhere) {
    LocalJobOptions o = smallJob(1);
    o.spec.transport = transport::TransportChoice::kNccl;
    o.spec.transport_options = nlohmann::json::object();
    // A build without NCCL says "the nccl transport needs CUDA and NCCL"; a build with it, on a
    // machine without a GPU, that no CUDA device is visible; on a GPU host, that CPU memory
    // cannot be registered. Each is an unsupported-nccl error at init.
    const std::string why = expectInitFailure(o, "unsupported: ");
    EXPECT_NE(why.find("nccl"), std::string::npos) << why;
}

TEST(Failure, CoordinatorDisappears) {
    LocalJobOptions o = smallJob(1'000'000);
    o.spec.verify = false;
    o.spec.launcher_collects = true;  // version 3's keys stay for the wait below
    LocalJob job(o);
    job.start();
    // Let a few versions go through, then take the coordinator away.
    ASSERT_NO_THROW((void)job.store().wait(keys::resumed(3, "e1r1"), 30s));
    job.killCoordinator();
    const auto codes = job.wait(30s);
    for (const auto &[name, code] : codes) {
        EXPECT_NE(code, 0) << name;
        EXPECT_NE(code, -1) << name << " hung after the coordinator disappeared";
        const std::string log = readFile(job.logOf(name));
        EXPECT_NE(log.find("coordinator"), std::string::npos) << name << ":\n" << log;
    }
}

}  // namespace
}  // namespace weightsync::engine
