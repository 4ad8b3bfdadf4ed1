// Versions driven through the fault-injecting backend (transport/fault/), which the trainer gets
// through its backend factory: one trainer rank and an engine of two inference ranks, agents on
// threads of this process, a TCP coordinator and UCX shared memory. A write that fails, or the
// writes to one receiver that are lost, fail the version on every rank; no receiver serves it,
// and every receiver whose live weights still hold the previous version serves that one again,
// checked byte for byte.

#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "engine/inference_agent.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "engine/trainer_agent.h"
#include "sim/synthetic_check.h"
#include "transport/fault/fault_backend.h"
#include "transport/registry.h"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <thread>

namespace weightsync::engine {
namespace {

using namespace std::chrono_literals;
namespace keys = protocol::keys;

const std::array<std::string, 2> kPeers = {"e0r0", "e0r1"};

JobSpec jobSpec(bool staging) {
    JobSpec spec;
    spec.model = "glm5-tiny";
    spec.mesh = {1, 1, 1};
    spec.fleet.engines = {{2, 1, 2, {}}};
    spec.steps = 2;
    spec.transport = transport::TransportChoice::kUcx;
    spec.transport_options = {{"transports", "posix,sysv,self"}};
    spec.verify = true;
    spec.staging = staging;
    spec.init_timeout = 30s;
    spec.step_timeout = 30s;
    return spec;
}

/// What one inference rank saw of versions 1 and 2.
struct Served {
    std::optional<StepResult> first;
    std::optional<Error> second;  // version 2's error (it must fail)
    uint64_t version = 0;         // the version the agent holds at the end
    std::string failure;          // anything unexpected
};

class TransportFault : public ::testing::Test {
  protected:
    std::shared_ptr<control::Store> client() {
        return std::make_shared<control::PrefixStore>(
            "job", std::make_shared<control::TcpStoreClient>(server_.host(), server_.port(), 10s));
    }

    /// Runs the job: version 1 as is, then version 2 with `policy` on the trainer's backend
    /// (with `fail_middle_write`, the write in the middle of version 2 fails). Returns the
    /// trainer's error of version 2.
    std::optional<Error> run(bool staging, transport::FaultPolicy policy,
                             bool fail_middle_write = false) {
        store_ = client();
        store_->set(keys::spec(), jobSpec(staging).toJson().dump());
        std::vector<std::thread> receivers;
        for (int r = 0; r < 2; ++r) {
            receivers.emplace_back([this, r] { serve(r); });
        }
        TrainerAgent trainer(client(), 0);
        transport::FaultInjectingBackend *fault = nullptr;
        trainer.useBackends([&](const std::string &name, const nlohmann::json &options) {
            auto backend = std::make_unique<transport::FaultInjectingBackend>(
                transport::makeBackend(name, options), transport::FaultPolicy{});
            fault = backend.get();
            return backend;
        });
        std::optional<Error> error;
        try {
            trainer.init();
            EXPECT_NE(fault, nullptr) << "the trainer did not use the injected factory";
            writes_per_push_ = trainer.plan().ranks[0].writes.size();
            (void)trainer.push(1);
            if (fail_middle_write) policy.fail_write = fault->writesSeen() + writes_per_push_ / 2;
            fault->setPolicy(policy);
            (void)trainer.push(2);
        } catch (const Error &e) {
            error = e;
        }
        for (std::thread &t : receivers) t.join();
        trainer_version_ = trainer.version();
        return error;
    }

    void serve(int rank) {
        Served &out = served_[static_cast<size_t>(rank)];
        try {
            InferenceOptions options;
            options.check = std::make_shared<sim::SyntheticCheck>();
            InferenceAgent agent(client(), 0, rank, std::move(options));
            agent.init();
            out.first = agent.serveStep(1);
            try {
                (void)agent.serveStep(2);
            } catch (const Error &e) {
                out.second = e;
            }
            out.version = agent.version();
        } catch (const std::exception &e) {
            out.failure = e.what();
        }
    }

    /// What `peer` reported when it gave up on version 2.
    protocol::Aborted aborted(const std::string &peer) {
        const auto raw = store_->get(keys::aborted(2, protocol::inferenceName(peer)));
        EXPECT_TRUE(raw) << peer << " did not report giving up on version 2";
        return raw ? protocol::decode<protocol::Aborted>(*raw, 2, "aborted") : protocol::Aborted{};
    }

    /// Version 1 committed and verified everywhere; version 2 failed everywhere, decided by the
    /// trainer with `code`, and nobody serves it.
    void expectVersionTwoFailedEverywhere(Errc code) {
        EXPECT_EQ(trainer_version_, 1u);
        for (size_t r = 0; r < kPeers.size(); ++r) {
            SCOPED_TRACE(kPeers[r]);
            const Served &s = served_[r];
            ASSERT_EQ(s.failure, "");
            ASSERT_TRUE(s.first);
            EXPECT_TRUE(s.first->committed);
            EXPECT_TRUE(s.first->verified);
            EXPECT_EQ(s.first->mismatched_bytes, 0);
            EXPECT_GT(s.first->checked_bytes, 0);
            ASSERT_TRUE(s.second) << "version 2 did not fail here";
            EXPECT_EQ(s.second->code(), code) << s.second->what();
            EXPECT_EQ(s.version, 1u);
            EXPECT_FALSE(store_->get(keys::resumed(2, kPeers[r])));
        }
        const auto raw = store_->get(keys::outcome(2));
        ASSERT_TRUE(raw);
        const auto outcome = protocol::decode<protocol::Outcome>(*raw, 2, "outcome");
        EXPECT_FALSE(outcome.commit);
        EXPECT_EQ(outcome.by, protocol::trainerName(0));
        EXPECT_EQ(outcome.code, code);
        EXPECT_NE(outcome.reason.find("injected"), std::string::npos) << outcome.reason;
    }

    control::TcpStoreServer server_;
    std::shared_ptr<control::Store> store_;
    std::array<Served, 2> served_;
    uint64_t trainer_version_ = 0;
    size_t writes_per_push_ = 0;
};

TEST_F(TransportFault, FailedWriteFailsTheVersionEverywhereAndStagedRanksKeepThePrevious) {
    // A write in the middle of version 2 fails (reported at the flush): half of the bytes have
    // been written into the receivers' staging copies.
    transport::FaultPolicy policy;
    policy.fail_at_flush = true;
    const auto error = run(/*staging=*/true, policy, /*fail_middle_write=*/true);
    ASSERT_GT(writes_per_push_, 2u);
    ASSERT_TRUE(error) << "version 2 did not fail on the trainer";
    EXPECT_EQ(error->code(), Errc::kTransport) << error->what();
    EXPECT_NE(std::string(error->what()).find("injected"), std::string::npos) << error->what();
    expectVersionTwoFailedEverywhere(Errc::kTransport);
    for (const std::string &peer : kPeers) {
        SCOPED_TRACE(peer);
        const protocol::Aborted a = aborted(peer);
        EXPECT_EQ(a.held, 1u);
        EXPECT_TRUE(a.intact);
        EXPECT_TRUE(a.serving);
        EXPECT_EQ(a.mismatched_bytes_vs_held, 0);  // checked: live still holds version 1
    }
}

TEST_F(TransportFault, LostWritesToOneRankFailTheVersionAndNobodyServesIt) {
    // In place (no staging): every write to e0r1 is lost, those to e0r0 land in its live
    // weights. The trainer's flush reports the lost peer; e0r1 still holds version 1 and serves
    // it again, e0r0 holds neither version and stays paused.
    transport::FaultPolicy policy;
    policy.dropped_peers = {"e0r1"};
    const auto error = run(/*staging=*/false, policy);
    ASSERT_TRUE(error) << "version 2 did not fail on the trainer";
    EXPECT_EQ(error->code(), Errc::kPeerLost) << error->what();
    EXPECT_NE(std::string(error->what()).find("e0r1"), std::string::npos) << error->what();
    expectVersionTwoFailedEverywhere(Errc::kPeerLost);
    const protocol::Aborted lost = aborted("e0r1");
    EXPECT_TRUE(lost.intact);
    EXPECT_TRUE(lost.serving);
    EXPECT_EQ(lost.mismatched_bytes_vs_held, 0);
    const protocol::Aborted written = aborted("e0r0");
    EXPECT_FALSE(written.intact);
    EXPECT_FALSE(written.serving);
    EXPECT_GT(written.mismatched_bytes_vs_held, 0);
}

}  // namespace
}  // namespace weightsync::engine
