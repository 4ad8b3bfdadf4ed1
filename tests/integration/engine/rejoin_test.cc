// An inference engine killed in the middle of a version comes back as new processes with the
// same engine and rank ids, re-registers, and takes every later version: no trainer restart, no
// new job. The version it died in fails everywhere; every version from the next one on commits
// and is verified on every rank, the rejoined ones included. The trainers import the new
// processes' memory (a newer generation) and never write into the old one.
// With flip, the ranks swap their arenas at every commit: killed at version 4 (three commits),
// the survivors' staging is the arena the new processes start with as live, so the writers must
// take each rank's own word for where to write (its paused message), not a common parity.

#include "engine/local_job.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "support/weightsync_bin.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <thread>

namespace weightsync::engine {
namespace {

using namespace std::chrono_literals;
namespace keys = protocol::keys;

constexpr uint64_t kVersions = 20;

struct RejoinCase {
    bool flip = false;
    uint64_t killed_at = 5;
};

class Rejoin : public ::testing::TestWithParam<RejoinCase> {};

std::string readFile(const std::string &path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_P(Rejoin, AnEngineKilledMidVersionRejoinsAndTakesEveryLaterVersion) {
    const uint64_t killed_at = GetParam().killed_at;
    LocalJobOptions o;
    o.spec.model = "glm5-tiny";
    o.spec.mesh = {1, 2, 2};
    o.spec.fleet.engines = {{2, 1, 2, {}}, {2, 1, 2, {}}};
    o.spec.steps = static_cast<int>(kVersions);
    o.spec.staging = true;
    o.spec.flip = GetParam().flip;
    o.spec.launcher_collects = true;  // every version's keys stay for the checks
    o.spec.rejoin_timeout = 60s;
    o.spec.step_timeout = 30s;
    o.spec.init_timeout = 30s;
    // TCP: a restarted receiver is reached on a fresh connection (see docs/transport.md on
    // shared-memory queues left by a dead peer).
    o.spec.transport_options = {{"transports", "tcp,self"}};
    o.executable = testing::weightsyncBin();
    const std::vector<std::string> keep_going = {"--keep-going"};
    for (const std::string t : {"trainer0", "trainer1"}) o.extra_args[t] = keep_going;
    for (const std::string p : {"inference-e0r0", "inference-e0r1"}) o.extra_args[p] = keep_going;
    const std::string fault = "paused@" + std::to_string(killed_at) + ":kill";
    for (const std::string p : {"inference-e1r0", "inference-e1r1"}) {
        o.extra_args[p] = {"--keep-going", "--fault", fault};
    }
    LocalJob job(o);
    job.start();

    // Engine 1 dies in version killed_at; once that version has failed, it is started again.
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    bool restarted = false;
    std::map<std::string, int> codes;
    while (std::chrono::steady_clock::now() < deadline) {
        codes = job.ended();
        if (!restarted && codes.contains("inference-e1r0") && codes.contains("inference-e1r1") &&
            job.store().get(keys::outcome(killed_at))) {
            EXPECT_EQ(codes.at("inference-e1r0"), 128 + 9);
            job.restartAgent("inference-e1r0", keep_going);
            job.restartAgent("inference-e1r1", keep_going);
            restarted = true;
            continue;
        }
        if (restarted && codes.size() == 6) break;
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(restarted) << "engine 1 was never killed, or version " << killed_at
                           << " never decided";
    codes = job.wait(0ms);
    for (const auto &[name, code] : codes) {
        EXPECT_EQ(code, 0) << name << " (log " << job.logOf(name) << ")";
        if (code != 0) job.keepLogs();
    }

    const auto outcome = [&](uint64_t v) {
        const auto raw = job.store().get(keys::outcome(v));
        EXPECT_TRUE(raw) << "version " << v << " has no outcome";
        return raw ? protocol::decode<protocol::Outcome>(*raw, v, "outcome") : protocol::Outcome{};
    };
    for (uint64_t v = 1; v <= kVersions; ++v) {
        SCOPED_TRACE("version " + std::to_string(v));
        const protocol::Outcome o_v = outcome(v);
        if (v == killed_at) {
            EXPECT_FALSE(o_v.commit);
            EXPECT_NE(o_v.reason.find("e1r"), std::string::npos) << o_v.reason;  // names the dead
            // The survivors kept the version before, staged: untouched and verified.
            for (const std::string p : {"e0r0", "e0r1"}) {
                const auto a = job.store().get(keys::aborted(v, protocol::inferenceName(p)));
                ASSERT_TRUE(a) << p;
                const auto aborted = protocol::decode<protocol::Aborted>(*a, v, "aborted");
                EXPECT_EQ(aborted.held, killed_at - 1);
                EXPECT_TRUE(aborted.intact && aborted.serving);
                EXPECT_EQ(aborted.mismatched_bytes_vs_held, 0);
            }
            continue;
        }
        EXPECT_TRUE(o_v.commit) << o_v.reason;
        for (const std::string p : {"e0r0", "e0r1", "e1r0", "e1r1"}) {
            const auto raw = job.store().get(keys::verified(v, p));
            ASSERT_TRUE(raw) << p << " did not verify";
            const auto verified = protocol::decode<protocol::Verified>(*raw, v, "verified");
            EXPECT_TRUE(verified.verified) << p;
            EXPECT_EQ(verified.mismatched_bytes, 0) << p;
        }
    }
    // The trainers imported the new processes' memory.
    for (const std::string t : {"trainer0", "trainer1"}) {
        const std::string log = readFile(job.logOf(t));
        EXPECT_NE(log.find("inference rank e1r0 rejoined"), std::string::npos) << log;
    }
}

std::string caseName(const ::testing::TestParamInfo<RejoinCase> &info) {
    return "KilledAtVersion" + std::to_string(info.param.killed_at);
}

INSTANTIATE_TEST_SUITE_P(Staging, Rejoin, ::testing::Values(RejoinCase{false, 5}), caseName);
INSTANTIATE_TEST_SUITE_P(FlipBySwap, Rejoin, ::testing::Values(RejoinCase{true, 4}), caseName);

}  // namespace
}  // namespace weightsync::engine
