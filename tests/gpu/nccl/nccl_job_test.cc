// The nccl transport between real processes on two GPUs: bit-exact versions 1 -> 1 and 2 -> 2
// (every version's weights differ, and every inference rank checks every byte), and a trainer
// killed in the middle of a version while its receiver waits in ncclRecv: the receiver gives up
// within the step timeout (its communicator aborted, nothing hangs) and still serves the previous
// version, byte for byte.

#include "engine/local_job.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "platform/cuda/device.h"
#include "support/weightsync_bin.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace weightsync::engine {
namespace {

using nlohmann::json;
using protocol::inferenceName;
using namespace std::chrono_literals;
namespace keys = protocol::keys;

class NcclJob : public ::testing::Test {
  protected:
    struct MeshShape {
        int trainers = 1;
        int receivers = 1;
    };

    void SetUp() override {
        if (platform::deviceCount() < 2) GTEST_SKIP() << "NCCL pairs need two CUDA devices";
    }

    static LocalJobOptions job(MeshShape shape, int steps) {
        LocalJobOptions o;
        o.spec.model = "glm5-tiny";
        o.spec.device = Device::kCuda;
        o.spec.transport = transport::TransportChoice::kNccl;
        o.spec.trainer_gpus = {0};
        o.spec.inference_gpus = {1};
        o.spec.mesh = {1, shape.trainers, shape.trainers};
        o.spec.fleet.engines = {{shape.receivers, 1, shape.receivers, {}}};
        o.spec.steps = steps;
        o.spec.step_timeout = 10s;
        o.spec.init_timeout = 60s;
        o.executable = testing::weightsyncBin();
        return o;
    }

    static std::vector<std::string> peers(int receivers) {
        std::vector<std::string> out;
        for (int r = 0; r < receivers; ++r) out.push_back("e0r" + std::to_string(r));
        return out;
    }

    static void expectBitExact(MeshShape shape) {
        const int steps = 4;
        LocalJob job(NcclJob::job(shape, steps));
        job.start();
        const auto codes = job.supervise(240s);
        for (const auto &[name, code] : codes) {
            EXPECT_EQ(code, 0) << name << " (log: " << job.logOf(name) << ")";
        }
        for (uint64_t v = 1; v <= steps; ++v) {
            for (const std::string &peer : peers(shape.receivers)) {
                SCOPED_TRACE(peer + " version " + std::to_string(v));
                const auto verified = job.store().get(keys::verified(v, peer));
                ASSERT_TRUE(verified);
                const json j = json::parse(*verified);
                EXPECT_TRUE(j.at("verified").get<bool>()) << *verified;
                EXPECT_GT(j.at("checked_bytes").get<int64_t>(), 0);
                EXPECT_EQ(j.at("mismatched_bytes").get<int64_t>(), 0);
            }
        }
    }
};

TEST_F(NcclJob, OneToOneBitExactEveryVersion) {
    expectBitExact({1, 1});
}

TEST_F(NcclJob, TwoToTwoBitExactEveryVersion) {
    // Both trainers on GPU 0, both inference ranks on GPU 1: four pairs, one communicator each.
    expectBitExact({2, 2});
}

TEST_F(NcclJob, TrainerKilledMidVersionReceiverKeepsThePreviousVersion) {
    LocalJobOptions o = job({1, 1}, 3);
    o.spec.staging = true;
    // Killed once version 2's first stage is converted, before its sends are posted: the
    // receiver has posted its receives and waits in NCCL for bytes that never come.
    o.extra_args["trainer0"] = {"--fault", "converting@2:kill"};
    LocalJob job(o);
    job.start();
    const auto start = std::chrono::steady_clock::now();
    const auto codes = job.wait(60s);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(codes.at("trainer0"), 128 + 9);
    EXPECT_NE(codes.at("inference-e0r0"), -1) << "the receiver hung";
    EXPECT_NE(codes.at("inference-e0r0"), 0);
    EXPECT_LT(seconds, 45.0) << "the receiver must give up within its step timeout (10 s)";
    const auto v1 = job.store().get(keys::verified(1, "e0r0"));
    ASSERT_TRUE(v1);
    EXPECT_TRUE(json::parse(*v1).at("verified").get<bool>());
    EXPECT_FALSE(job.store().get(keys::resumed(2, "e0r0")));
    const auto aborted = job.store().get(keys::aborted(2, inferenceName("e0r0")));
    ASSERT_TRUE(aborted) << "the receiver did not report version 2's failure";
    const auto a = protocol::decode<protocol::Aborted>(*aborted, 2, "aborted");
    EXPECT_EQ(a.held, 1U);
    EXPECT_TRUE(a.intact);  // staged: version 2's receives never touched the live weights
    EXPECT_TRUE(a.serving);
    EXPECT_EQ(a.mismatched_bytes_vs_held, 0);  // checked against version 1
}

}  // namespace
}  // namespace weightsync::engine
