// The receiver's side of a plan (two-sided transports, NCCL): for every peer, the receives
// restricted to one trainer are exactly that trainer's writes to the peer in plan order, and the
// writers / readers of each pair agree with the plan's writes.

#include "planner/receives.h"
#include "common/error.h"
#include "layout/registry.h"
#include "planner/plan.h"

#include <gtest/gtest.h>

#include <set>

namespace weightsync::planner {
namespace {

Fleet fleet(int engines, int ranks, int ep, int tp = 1) {
    Fleet f;
    f.engines.assign(static_cast<size_t>(engines), EngineSpec{ranks, tp, ep, {}});
    return f;
}

void expectReceivesMatchWrites(const Plan &plan) {
    int64_t received = 0;
    int64_t sent = 0;
    for (const RankPlan &rp : plan.ranks) sent += rp.send_bytes;
    for (uint32_t q = 0; q < plan.peers.size(); ++q) {
        SCOPED_TRACE(plan.peers[q].name);
        const std::vector<Receive> receives = receivesOf(plan, q);
        // Stage order: a receiver's batches follow the pipeline.
        for (size_t i = 1; i < receives.size(); ++i) {
            ASSERT_LE(receives[i - 1].stage, receives[i].stage) << i;
        }
        std::set<int> writers;
        for (const RankPlan &rp : plan.ranks) {
            std::vector<Write> expected;
            for (const Write &w : rp.writes) {
                if (w.peer == q) expected.push_back(w);
            }
            std::vector<Receive> got;
            for (const Receive &r : receives) {
                if (r.trainer == rp.rank) got.push_back(r);
            }
            ASSERT_EQ(got.size(), expected.size()) << "trainer " << rp.rank;
            for (size_t i = 0; i < got.size(); ++i) {
                EXPECT_EQ(got[i].dest, expected[i].dest) << rp.rank << " " << i;
                EXPECT_EQ(got[i].dest_offset, expected[i].dest_offset) << rp.rank << " " << i;
                EXPECT_EQ(got[i].bytes, expected[i].bytes) << rp.rank << " " << i;
                EXPECT_EQ(got[i].stage, expected[i].stage) << rp.rank << " " << i;
                received += got[i].bytes;
            }
            if (!expected.empty()) writers.insert(rp.rank);
            const std::vector<uint32_t> readers = readersOf(plan, rp.rank);
            EXPECT_EQ(std::count(readers.begin(), readers.end(), q), expected.empty() ? 0 : 1);
        }
        const std::vector<int> w = writersOf(plan, q);
        EXPECT_EQ(std::set<int>(w.begin(), w.end()), writers);
        EXPECT_TRUE(std::is_sorted(w.begin(), w.end()));
    }
    EXPECT_EQ(received, sent);  // every write is some peer's receive
}

TEST(Receives, MatchEachTrainersWritesInOrderGlm5TwoToTwo) {
    // The 2 -> 2 demo's shape: FSDP 2 x EP 2 into one engine of 2 EP ranks, 5 layers.
    const layout::Layout l = layout::resolveLayout("glm5", 5);
    PlannerOptions options;
    options.stage_bytes = int64_t{64} << 20;  // many stages
    const Plan plan = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 2, 2), options);
    expectReceivesMatchWrites(plan);
    for (uint32_t q = 0; q < plan.peers.size(); ++q) EXPECT_EQ(writersOf(plan, q).size(), 2U);
}

TEST(Receives, MatchEachTrainersWritesInOrderHsdpAndTp) {
    // Two replicas (only replica 0 writes) into two engines of two EP ranks each.
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const Plan plan = buildPlan(l, TrainerMesh{2, 4, 2}, fleet(2, 2, 2));
    expectReceivesMatchWrites(plan);
    for (int t = 4; t < 8; ++t) EXPECT_TRUE(readersOf(plan, t).empty()) << t;
}

TEST(Receives, PeerOutsideThePlanIsRefused) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const Plan plan = buildPlan(l, TrainerMesh{1, 1, 1}, fleet(1, 1, 1));
    try {
        (void)receivesOf(plan, static_cast<uint32_t>(plan.peers.size()));
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    }
    EXPECT_THROW((void)readersOf(plan, 1), Error);
}

}  // namespace
}  // namespace weightsync::planner
