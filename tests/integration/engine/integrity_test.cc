// Checksums and flip updates (issue 18), agents on threads of this process over UCX shared
// memory, faults injected by the trainer's fault backend (transport/fault/):
// - a small run of the checksum campaign (bench/e2e/bench_integrity runs 1000 + 1000): every
//   flipped bit and lost write fails its version everywhere, naming the write; clean versions
//   commit and verify; after every failure every rank serves the previous version, intact.
// - flip: a version that fails in its wire phase never parks the readers and leaves the live
//   weights as they were; flip versions commit bit-exact with the readers parked once each.

#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "engine/inference_agent.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "engine/trainer_agent.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "sim/integrity_campaign.h"
#include "sim/read_loop.h"
#include "sim/synthetic_check.h"
#include "transport/fault/fault_backend.h"
#include "transport/registry.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <thread>

namespace weightsync::engine {
namespace {

using namespace std::chrono_literals;
namespace keys = protocol::keys;

TEST(Integrity, InjectedFaultsAreAllDetectedAndCleanVersionsCommit) {
    sim::CampaignOptions o;
    o.faults = 8;
    o.clean = 4;
    o.seed = 5;
    const sim::CampaignResult r = sim::runIntegrityCampaign(o);
    for (const std::string &p : r.problems) ADD_FAILURE() << p;
    EXPECT_EQ(r.versions, 12);
    EXPECT_EQ(r.faults, 8);
    EXPECT_EQ(r.bit_flips, 4);
    EXPECT_EQ(r.lost_writes, 4);
    EXPECT_EQ(r.detected + r.missed_harmless, 8);
    EXPECT_EQ(r.named_exactly, r.detected);
    EXPECT_EQ(r.false_alarms, 0);
    EXPECT_EQ(r.committed_clean, 4);
    EXPECT_EQ(r.verified, r.committed_clean + r.missed_harmless);
    EXPECT_EQ(r.mismatched_versions, 0);
    EXPECT_EQ(r.previous_kept, r.detected);
}

/// Each trainer tells the receivers stage by stage which writes landed (keys::staged), and they
/// checksum those bytes while later stages are still written. A flipped bit in an early stage,
/// covered by such a notice, still fails its version everywhere, naming the write; clean
/// versions around it commit bit-exact.
TEST(Integrity, AFaultInAnEarlyStageIsDetectedThroughItsStagedNotice) {
    control::TcpStoreServer server;
    const auto client = [&] {
        return std::make_shared<control::PrefixStore>(
            "job", std::make_shared<control::TcpStoreClient>(server.host(), server.port(), 10s));
    };
    JobSpec spec;
    spec.model = "glm5-tiny";
    spec.mesh = {1, 1, 1};
    spec.fleet.engines = {{2, 1, 2, {}}};
    spec.steps = 4;
    spec.transport_options = {{"transports", "posix,sysv,self"}};
    spec.verify = true;
    spec.staging = true;
    spec.checksum = true;
    spec.planner.stage_bytes = 4096;  // many stages
    spec.init_timeout = 30s;
    spec.step_timeout = 30s;
    client()->set(keys::spec(), spec.toJson().dump());

    const layout::Layout layout = jobLayout(spec);
    const planner::Plan plan = planner::buildPlan(layout, spec.mesh, spec.fleet, spec.planner);
    const std::vector<planner::Write> &writes = plan.ranks[0].writes;
    ASSERT_GT(writes.back().stage, writes.front().stage + 2) << "the plan has too few stages";
    // Version 2: the first write of the first stage; version 3: the first of the second stage.
    size_t second = 0;
    while (writes[second].stage == writes.front().stage) ++second;
    const std::array<size_t, 2> faulted{0, second};
    const auto named = [&](size_t i) {
        const planner::Write &w = writes[i];
        return fmt::format("'{}' bytes [{}, {}) written by trainer rank 0",
                           planner::localTensors(layout, plan.peers[w.peer])[w.dest].name,
                           w.dest_offset, w.dest_offset + w.bytes);
    };

    struct Seen {
        std::array<bool, 5> ok{};
        std::array<int64_t, 5> mismatched{};
        std::array<std::string, 5> error{};
        std::string unexpected;
    };
    std::array<Seen, 2> seen;
    std::vector<std::thread> receivers;
    for (int r = 0; r < 2; ++r) {
        receivers.emplace_back([&, r] {
            Seen &s = seen[static_cast<size_t>(r)];
            try {
                InferenceOptions o;
                o.check = std::make_shared<sim::SyntheticCheck>();
                InferenceAgent agent(client(), 0, r, std::move(o));
                agent.init();
                for (uint64_t v = 1; v <= 4; ++v) {
                    try {
                        const StepResult step = agent.serveStep(v);
                        s.ok[v] = step.committed && step.verified;
                        s.mismatched[v] = step.mismatched_bytes;
                    } catch (const Error &e) {
                        s.error[v] = e.what();
                    }
                }
            } catch (const std::exception &e) {
                s.unexpected = e.what();
            }
        });
    }
    TrainerAgent trainer(client(), 0);
    transport::FaultInjectingBackend *fault = nullptr;
    trainer.useBackends([&](const std::string &name, const nlohmann::json &options) {
        auto b = std::make_unique<transport::FaultInjectingBackend>(
            transport::makeBackend(name, options), transport::FaultPolicy{});
        fault = b.get();
        return b;
    });
    std::array<std::string, 5> trainer_error{};
    try {
        trainer.init();
        for (uint64_t v = 1; v <= 4; ++v) {
            transport::FaultPolicy policy;
            if (v == 2 || v == 3) {
                policy.corrupt_write = fault->writesSeen() + faulted[v - 2] + 1;
                policy.corrupt_byte = 777;
            }
            fault->setPolicy(policy);
            try {
                (void)trainer.push(v);
            } catch (const Error &e) {
                trainer_error[v] = e.what();
            }
        }
    } catch (const Error &e) {
        ADD_FAILURE() << "trainer: " << e.what();
    }
    for (std::thread &t : receivers) t.join();

    auto store = client();
    for (uint64_t v = 1; v <= 4; ++v) {
        SCOPED_TRACE(v);
        // Several notices per version, each further than the last, the first not the whole plan.
        std::vector<int64_t> notices;
        while (const auto raw = store->get(keys::staged(v, notices.size() + 1, 0))) {
            notices.push_back(protocol::decode<protocol::WritesLanded>(*raw, v, "staged").writes);
        }
        ASSERT_GE(notices.size(), 2u);
        EXPECT_LT(notices.front(), static_cast<int64_t>(writes.size()));
        EXPECT_TRUE(std::is_sorted(notices.begin(), notices.end()));
        if (v == 2 || v == 3) {
            // A notice covered the faulted write while later writes were still to come.
            const auto w = static_cast<int64_t>(faulted[v - 2]);
            EXPECT_TRUE(std::any_of(notices.begin(), notices.end(), [&](int64_t n) {
                return n > w && n < static_cast<int64_t>(writes.size());
            }));
        }
    }
    for (const uint64_t v : {2, 3}) {
        SCOPED_TRACE(v);
        EXPECT_NE(trainer_error[v].find("checksum mismatch"), std::string::npos)
            << trainer_error[v];
        EXPECT_NE(trainer_error[v].find(named(faulted[v - 2])), std::string::npos)
            << trainer_error[v] << " does not name " << named(faulted[v - 2]);
    }
    EXPECT_EQ(trainer_error[1], "");
    EXPECT_EQ(trainer_error[4], "");
    for (size_t r = 0; r < seen.size(); ++r) {
        SCOPED_TRACE(r);
        const Seen &s = seen[r];
        ASSERT_EQ(s.unexpected, "");
        for (const uint64_t v : {1, 4}) {
            EXPECT_TRUE(s.ok[v]) << s.error[v];
            EXPECT_EQ(s.mismatched[v], 0);
        }
        for (const uint64_t v : {2, 3}) {
            EXPECT_FALSE(s.ok[v]);
            EXPECT_NE(s.error[v].find("checksum mismatch"), std::string::npos) << s.error[v];
        }
    }
}

/// Readers that count how often the agent parks them, around a real ReadLoop.
class CountingReaders : public WeightReaders {
  public:
    CountingReaders(std::unique_ptr<WeightReaders> inner, std::atomic<int> &pauses)
        : inner_(std::move(inner)), pauses_(pauses) {}
    void pause() override {
        ++pauses_;
        inner_->pause();
    }
    void resume() override { inner_->resume(); }

  private:
    std::unique_ptr<WeightReaders> inner_;
    std::atomic<int> &pauses_;
};

TEST(Integrity, FlipNeverPausesForAVersionThatFailsOnTheWire) {
    control::TcpStoreServer server;
    const auto client = [&] {
        return std::make_shared<control::PrefixStore>(
            "job", std::make_shared<control::TcpStoreClient>(server.host(), server.port(), 10s));
    };
    JobSpec spec;
    spec.model = "glm5-tiny";
    spec.mesh = {1, 1, 1};
    spec.fleet.engines = {{2, 1, 2, {}}};
    spec.steps = 3;
    spec.transport_options = {{"transports", "posix,sysv,self"}};
    spec.verify = true;
    spec.staging = true;
    spec.flip = true;
    spec.checksum = true;
    spec.init_timeout = 30s;
    spec.step_timeout = 30s;
    client()->set(keys::spec(), spec.toJson().dump());

    struct Seen {
        std::atomic<int> pauses{0};
        std::array<int, 4> pauses_after{};  // after version v
        std::array<bool, 4> ok{};
        std::array<int64_t, 4> mismatched{};
        std::optional<Error> failure;  // of version 2
        std::optional<protocol::Aborted> aborted;
        std::string unexpected;
    };
    std::array<Seen, 2> seen;
    std::vector<std::thread> receivers;
    for (int r = 0; r < 2; ++r) {
        receivers.emplace_back([&, r] {
            Seen &s = seen[static_cast<size_t>(r)];
            try {
                InferenceOptions o;
                o.check = std::make_shared<sim::SyntheticCheck>();
                o.readers = [&s](const LocalWeights &live) -> std::unique_ptr<WeightReaders> {
                    return std::make_unique<CountingReaders>(sim::readLoopFor(live), s.pauses);
                };
                auto store = client();
                InferenceAgent agent(store, 0, r, std::move(o));
                agent.init();
                for (uint64_t v = 1; v <= 3; ++v) {
                    try {
                        const StepResult step = agent.serveStep(v);
                        s.ok[v] = step.committed && step.verified;
                        s.mismatched[v] = step.mismatched_bytes;
                    } catch (const Error &e) {
                        if (v != 2) throw;
                        s.failure = e;
                        const auto raw = store->get(
                            keys::aborted(2, protocol::inferenceName(agent.peer().name)));
                        if (raw) s.aborted = protocol::decode<protocol::Aborted>(*raw, 2, "a");
                    }
                    s.pauses_after[v] = s.pauses.load();
                }
            } catch (const std::exception &e) {
                s.unexpected = e.what();
            }
        });
    }
    TrainerAgent trainer(client(), 0);
    transport::FaultInjectingBackend *fault = nullptr;
    trainer.useBackends([&](const std::string &name, const nlohmann::json &options) {
        auto b = std::make_unique<transport::FaultInjectingBackend>(
            transport::makeBackend(name, options), transport::FaultPolicy{});
        fault = b.get();
        return b;
    });
    std::optional<Error> trainer_failure;
    try {
        trainer.init();
        (void)trainer.push(1);
        transport::FaultPolicy corrupt;
        corrupt.corrupt_write = fault->writesSeen() + 3;
        corrupt.corrupt_byte = 12345;
        fault->setPolicy(corrupt);
        try {
            (void)trainer.push(2);
        } catch (const Error &e) {
            trainer_failure = e;
        }
        fault->setPolicy({});
        (void)trainer.push(3);
    } catch (const Error &e) {
        ADD_FAILURE() << "trainer: " << e.what();
    }
    for (std::thread &t : receivers) t.join();

    ASSERT_TRUE(trainer_failure) << "version 2 committed despite a flipped bit";
    EXPECT_EQ(trainer_failure->code(), Errc::kCorruption) << trainer_failure->what();
    EXPECT_NE(std::string(trainer_failure->what()).find("checksum mismatch"), std::string::npos)
        << trainer_failure->what();
    EXPECT_EQ(trainer.version(), 3u);
    for (size_t r = 0; r < seen.size(); ++r) {
        SCOPED_TRACE(r);
        const Seen &s = seen[r];
        ASSERT_EQ(s.unexpected, "");
        EXPECT_TRUE(s.ok[1]);
        EXPECT_TRUE(s.ok[3]);
        EXPECT_EQ(s.mismatched[1], 0);
        EXPECT_EQ(s.mismatched[3], 0);
        ASSERT_TRUE(s.failure) << "version 2 did not fail on this rank";
        EXPECT_EQ(s.failure->code(), Errc::kCorruption) << s.failure->what();
        // Parked once for version 1's flip, never for version 2, once for version 3's.
        EXPECT_EQ(s.pauses_after[1], 1);
        EXPECT_EQ(s.pauses_after[2], 1);
        EXPECT_EQ(s.pauses_after[3], 2);
        ASSERT_TRUE(s.aborted);
        EXPECT_EQ(s.aborted->held, 1u);
        EXPECT_TRUE(s.aborted->intact);
        EXPECT_TRUE(s.aborted->serving);
        EXPECT_EQ(s.aborted->mismatched_bytes_vs_held, 0);  // live still holds version 1
    }
}

}  // namespace
}  // namespace weightsync::engine
