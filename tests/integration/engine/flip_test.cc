// Flip updates by a swap of the arenas (issue 18), agents on threads of this process over UCX
// shared memory: the ranks' own arenas, readers that follow a new address (sim::ReadLoop).
// - A version that fails on the wire (a flipped bit, caught by the checksums) parks nobody and
//   swaps nothing; the next version is written into the arena that is staging *now* (the one
//   the version before made staging, not the one a version-number parity would pick), commits
//   bit-exact, and the readers, the checks and the hooks follow live to it.
// - A version that fails after the swap (a rank's hook point throws) swaps back wherever it
//   swapped: every rank serves the version before again, intact, and the next one commits.
// - With flip_copy, the same job copies staging over live and never moves the readers.
// (integrity_test.cc covers readers that cannot follow: the agent copies for them.)

#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "engine/inference_agent.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "engine/trainer_agent.h"
#include "sim/read_loop.h"
#include "sim/synthetic_check.h"
#include "transport/fault/fault_backend.h"
#include "transport/registry.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <optional>
#include <thread>

namespace weightsync::engine {
namespace {

using namespace std::chrono_literals;
namespace keys = protocol::keys;

/// A real ReadLoop that records how often it is parked and where it is pointed.
class TrackingReaders : public WeightReaders {
  public:
    TrackingReaders(std::unique_ptr<WeightReaders> inner, std::atomic<int> &pauses,
                    std::vector<const std::byte *> &bound)
        : inner_(std::move(inner)), pauses_(pauses), bound_(bound) {}
    void pause() override {
        ++pauses_;
        inner_->pause();
    }
    void resume() override { inner_->resume(); }
    [[nodiscard]] bool canRebind() const override { return inner_->canRebind(); }
    void rebind(const LocalWeights &live) override {
        bound_.push_back(live.data.front());  // on the agent's thread, read after it ended
        inner_->rebind(live);
    }

  private:
    std::unique_ptr<WeightReaders> inner_;
    std::atomic<int> &pauses_;
    std::vector<const std::byte *> &bound_;
};

/// What one inference rank saw of versions 1..3.
struct Seen {
    bool by_swap = false;
    const std::byte *initial = nullptr;  // its first tensor in the live arena at init
    std::atomic<int> pauses{0};
    std::vector<const std::byte *> bound;  // every rebind's first tensor, in order
    std::array<int, 4> pauses_after{};     // after version v
    std::array<size_t, 4> rebinds_after{};
    std::array<bool, 4> ok{};
    std::array<bool, 4> swapped{};
    std::array<uint32_t, 4> target{};  // its paused message's target copy
    std::optional<Error> failure;      // of version 2
    std::optional<protocol::Aborted> aborted;
    std::string unexpected;
};

enum class Fault { kWire, kAfterSwap };

/// One trainer, one engine of two ranks, three versions; version 2 fails (`fault`).
void runFlipJob(Fault fault, bool flip_copy, std::array<Seen, 2> &seen,
                std::optional<Error> &trainer_failure, uint64_t &trainer_version) {
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
    spec.flip_copy = flip_copy;
    spec.checksum = true;
    spec.retain_versions = 8;  // every version's messages stay for the checks
    spec.init_timeout = 30s;
    spec.step_timeout = 30s;
    client()->set(keys::spec(), spec.toJson().dump());

    std::vector<std::thread> receivers;
    for (int r = 0; r < 2; ++r) {
        receivers.emplace_back([&, r] {
            Seen &s = seen[static_cast<size_t>(r)];
            try {
                InferenceOptions o;
                o.check = std::make_shared<sim::SyntheticCheck>();
                o.readers = [&s](const LocalWeights &live) -> std::unique_ptr<WeightReaders> {
                    s.initial = live.data.front();
                    return std::make_unique<TrackingReaders>(sim::readLoopFor(live), s.pauses,
                                                             s.bound);
                };
                auto store = client();
                InferenceAgent agent(store, 0, r, std::move(o));
                if (fault == Fault::kAfterSwap && r == 1) {
                    agent.observePoints([](protocol::Point point, uint64_t version) {
                        if (point == protocol::Point::kApplying && version == 2) {
                            fail(Errc::kInternal, "injected: a hook failed after the flip");
                        }
                    });
                }
                agent.init();
                s.by_swap = agent.flipsBySwap();
                const std::string me = agent.peer().name;
                for (uint64_t v = 1; v <= 3; ++v) {
                    try {
                        const StepResult step = agent.serveStep(v);
                        s.ok[v] = step.committed && step.verified && step.mismatched_bytes == 0;
                        s.swapped[v] = step.swapped;
                    } catch (const Error &e) {
                        if (v != 2) throw;
                        s.failure = e;
                        const auto raw = store->get(keys::aborted(2, protocol::inferenceName(me)));
                        if (raw) s.aborted = protocol::decode<protocol::Aborted>(*raw, 2, "a");
                    }
                    const auto paused = store->get(keys::paused(v, me));
                    if (paused)
                        s.target[v] = protocol::decode<protocol::Paused>(*paused, v, "p").target;
                    s.pauses_after[v] = s.pauses.load();
                    s.rebinds_after[v] = s.bound.size();
                }
            } catch (const std::exception &e) {
                s.unexpected = e.what();
            }
        });
    }
    TrainerAgent trainer(client(), 0);
    transport::FaultInjectingBackend *backend = nullptr;
    trainer.useBackends([&](const std::string &name, const nlohmann::json &options) {
        auto b = std::make_unique<transport::FaultInjectingBackend>(
            transport::makeBackend(name, options), transport::FaultPolicy{});
        backend = b.get();
        return b;
    });
    try {
        trainer.init();
        (void)trainer.push(1);
        if (fault == Fault::kWire) {
            transport::FaultPolicy corrupt;
            corrupt.corrupt_write = backend->writesSeen() + 3;
            corrupt.corrupt_byte = 12345;
            backend->setPolicy(corrupt);
        }
        try {
            (void)trainer.push(2);
        } catch (const Error &e) {
            trainer_failure = e;
        }
        backend->setPolicy({});
        (void)trainer.push(3);
    } catch (const Error &e) {
        ADD_FAILURE() << "trainer: " << e.what();
    }
    for (std::thread &t : receivers) t.join();
    trainer_version = trainer.version();
}

TEST(FlipBySwap, AVersionFailedOnTheWireIsFollowedByAGoodOneInTheRightArena) {
    std::array<Seen, 2> seen;
    std::optional<Error> trainer_failure;
    uint64_t trainer_version = 0;
    runFlipJob(Fault::kWire, /*flip_copy=*/false, seen, trainer_failure, trainer_version);

    ASSERT_TRUE(trainer_failure) << "version 2 committed despite a flipped bit";
    EXPECT_EQ(trainer_failure->code(), Errc::kCorruption) << trainer_failure->what();
    EXPECT_EQ(trainer_version, 3u);
    for (size_t r = 0; r < seen.size(); ++r) {
        SCOPED_TRACE(r);
        const Seen &s = seen[r];
        ASSERT_EQ(s.unexpected, "");
        EXPECT_TRUE(s.by_swap);
        EXPECT_TRUE(s.ok[1]);
        EXPECT_TRUE(s.ok[3]);
        EXPECT_TRUE(s.swapped[1]);
        EXPECT_TRUE(s.swapped[3]);
        // Version 1 is written into arena 1 (staging at init); version 2, which fails, and
        // version 3 into arena 0, staging since version 1 committed.
        EXPECT_EQ(s.target[1], 1u);
        EXPECT_EQ(s.target[2], 0u);
        EXPECT_EQ(s.target[3], 0u);
        // Parked for version 1's flip and version 3's, never for version 2.
        EXPECT_EQ(s.pauses_after[1], 1);
        EXPECT_EQ(s.pauses_after[2], 1);
        EXPECT_EQ(s.pauses_after[3], 2);
        // The readers followed live to arena 1, stayed there through version 2, and came back
        // to arena 0 (where version 3 was written) with version 3.
        ASSERT_EQ(s.rebinds_after[1], 1u);
        EXPECT_EQ(s.rebinds_after[2], 1u);
        ASSERT_EQ(s.rebinds_after[3], 2u);
        EXPECT_NE(s.bound[0], s.initial);
        EXPECT_EQ(s.bound[1], s.initial);
        ASSERT_TRUE(s.failure) << "version 2 did not fail on this rank";
        EXPECT_EQ(s.failure->code(), Errc::kCorruption) << s.failure->what();
        ASSERT_TRUE(s.aborted);
        EXPECT_EQ(s.aborted->held, 1u);
        EXPECT_TRUE(s.aborted->intact);
        EXPECT_TRUE(s.aborted->serving);
        EXPECT_EQ(s.aborted->mismatched_bytes_vs_held, 0);  // live still holds version 1
    }
}

TEST(FlipBySwap, AVersionFailedAfterTheSwapSwapsBackEverywhere) {
    std::array<Seen, 2> seen;
    std::optional<Error> trainer_failure;
    uint64_t trainer_version = 0;
    runFlipJob(Fault::kAfterSwap, /*flip_copy=*/false, seen, trainer_failure, trainer_version);

    ASSERT_TRUE(trainer_failure) << "version 2 committed despite a failed hook";
    EXPECT_NE(std::string(trainer_failure->what()).find("injected"), std::string::npos)
        << trainer_failure->what();
    EXPECT_EQ(trainer_version, 3u);
    for (size_t r = 0; r < seen.size(); ++r) {
        SCOPED_TRACE(r);
        const Seen &s = seen[r];
        ASSERT_EQ(s.unexpected, "");
        EXPECT_TRUE(s.by_swap);
        EXPECT_TRUE(s.ok[1]);
        EXPECT_TRUE(s.ok[3]);
        EXPECT_EQ(s.target[1], 1u);
        EXPECT_EQ(s.target[2], 0u);
        EXPECT_EQ(s.target[3], 0u);  // swapped back: arena 0 is staging again
        // Rank 1 swapped in version 2 and swapped back; rank 0 did the same, or saw the abort
        // in its landed barrier before it swapped. Either way version 1's arena is live again.
        if (r == 1) {
            EXPECT_EQ(s.rebinds_after[2], 3u);
        }
        ASSERT_TRUE(s.rebinds_after[2] == 1u || s.rebinds_after[2] == 3u) << s.rebinds_after[2];
        EXPECT_EQ(s.bound[s.rebinds_after[2] - 1], s.bound[0]);
        EXPECT_NE(s.bound[0], s.initial);
        // Version 3 went into arena 0, which is live after it.
        ASSERT_EQ(s.rebinds_after[3], s.rebinds_after[2] + 1);
        EXPECT_EQ(s.bound.back(), s.initial);
        ASSERT_TRUE(s.failure) << "version 2 did not fail on this rank";
        ASSERT_TRUE(s.aborted);
        EXPECT_EQ(s.aborted->held, 1u);
        EXPECT_TRUE(s.aborted->intact);
        EXPECT_TRUE(s.aborted->serving);
        EXPECT_EQ(s.aborted->mismatched_bytes_vs_held, 0);  // version 1 is live again
    }
}

TEST(FlipBySwap, FlipCopyCopiesAndNeverMovesTheReaders) {
    std::array<Seen, 2> seen;
    std::optional<Error> trainer_failure;
    uint64_t trainer_version = 0;
    runFlipJob(Fault::kWire, /*flip_copy=*/true, seen, trainer_failure, trainer_version);

    ASSERT_TRUE(trainer_failure);
    EXPECT_EQ(trainer_version, 3u);
    for (size_t r = 0; r < seen.size(); ++r) {
        SCOPED_TRACE(r);
        const Seen &s = seen[r];
        ASSERT_EQ(s.unexpected, "");
        EXPECT_FALSE(s.by_swap);
        EXPECT_TRUE(s.ok[1]);
        EXPECT_TRUE(s.ok[3]);
        EXPECT_FALSE(s.swapped[1]);
        EXPECT_FALSE(s.swapped[3]);
        EXPECT_EQ(s.target[1], 1u);  // always staging
        EXPECT_EQ(s.target[3], 1u);
        EXPECT_TRUE(s.bound.empty());
        ASSERT_TRUE(s.aborted);
        EXPECT_TRUE(s.aborted->intact && s.aborted->serving);
        EXPECT_EQ(s.aborted->mismatched_bytes_vs_held, 0);
    }
}

}  // namespace
}  // namespace weightsync::engine
