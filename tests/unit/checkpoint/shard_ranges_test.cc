// Shard runs against the reference converter: cutting every inference rank's tensors out of the
// whole (checkpoint) tensors by the runs gives exactly the reference conversion for that rank —
// TP row and column splits, fused parts, expert parallelism (linear and explicit expert maps),
// FP8 scale grids — and every local byte is covered exactly once.

#include "checkpoint/shard_ranges.h"
#include "checkpoint/file_layout.h"
#include "convert/reference.h"
#include "convert/synthetic.h"
#include "layout/registry.h"
#include "planner/geometry.h"

#include <gtest/gtest.h>

#include <cstring>

namespace weightsync::checkpoint {
namespace {

struct Case {
    std::string model;
    planner::EngineSpec engine;
};

/// Checks every rank of a one-engine fleet.
void checkFleet(const Case &c) {
    const layout::Layout l = layout::resolveLayout(c.model);
    const convert::SyntheticGenerator gen(l, 5, 3);
    const auto whole = convert::referenceLocalTensors(l, checkpointPeer(l), gen);
    planner::Fleet fleet;
    fleet.engines.push_back(c.engine);
    size_t total_runs = 0;
    for (const planner::PeerSpec &peer : planner::fleetPeers(fleet, planner::layoutExperts(l))) {
        const auto want = convert::referenceLocalTensors(l, peer, gen);
        const auto runs = shardRuns(l, peer);
        EXPECT_EQ(runs.size(), l.dests().size());
        for (size_t i = 0; i < runs.size(); ++i) {
            const std::string &name = l.dests()[i].name;
            std::vector<std::byte> got(want[i].size(), std::byte{0});
            std::vector<int> covered(want[i].size(), 0);
            for (const checkpoint::Run &r : runs[i]) {
                ASSERT_GE(r.full, 0);
                ASSERT_LE(r.full + r.bytes, static_cast<int64_t>(whole[i].size())) << name;
                ASSERT_LE(r.local + r.bytes, static_cast<int64_t>(got.size())) << name;
                std::memcpy(got.data() + r.local, whole[i].data() + r.full,
                            static_cast<size_t>(r.bytes));
                for (int64_t b = r.local; b < r.local + r.bytes; ++b) ++covered[b];
            }
            total_runs += runs[i].size();
            EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int n) { return n == 1; }))
                << c.model << " " << peer.name << " " << name << ": not covered exactly once";
            EXPECT_TRUE(got == want[i]) << c.model << " " << peer.name << " " << name;
        }
    }
    EXPECT_GE(total_runs, l.dests().size()) << c.model;
}

TEST(ShardRuns, TheCheckpointPeerReadsEveryTensorInOneRun) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const auto runs = shardRuns(l, checkpointPeer(l));
    for (size_t i = 0; i < runs.size(); ++i) {
        ASSERT_EQ(runs[i].size(), 1u) << l.dests()[i].name;
        EXPECT_EQ(runs[i][0],
                  (checkpoint::Run{0, 0,
                                   numel(l.dests()[i].shape) *
                                       static_cast<int64_t>(dtypeSize(l.dests()[i].dtype))}));
    }
}

TEST(ShardRuns, ExpertParallelRanksTakeTheirExperts) {
    checkFleet({"glm5-tiny", {2, 1, 2, {}}});
    checkFleet({"glm5-tiny", {4, 1, 4, {}}});
}

TEST(ShardRuns, ExplicitExpertMapsKeepTheirOrder) {
    checkFleet({"glm5-tiny", {2, 1, 2, {{7, 2, 5, 0}, {1, 6, 3, 4}}}});
}

TEST(ShardRuns, TensorParallelRowAndColumnSplitsWithFusedPartsAndScales) {
    checkFleet({"glm5-aligned", {2, 2, 1, {}}});
    checkFleet({"glm5-aligned", {2, 2, 2, {}}});
}

TEST(ShardRuns, ReplicatedRanksReadEverything) {
    checkFleet({"qwen3-tiny", {2, 1, 1, {}}});
}

}  // namespace
}  // namespace weightsync::checkpoint
