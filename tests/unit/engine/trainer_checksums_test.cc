// A CPU trainer's checksums of its writes' source bytes (engine/compute.h): one per write, each
// equal to the reference checksum of the bytes the write sends, also for the writes a trainer
// sends to several engines, which it checksums once (firstWithSameSource).

#include "engine/checksum.h"
#include "engine/job.h"
#include "planner/plan.h"
#include "trainer_checksums_check.h"

#include <gtest/gtest.h>

#include <vector>

namespace weightsync::engine {
namespace {

/// Two engines: alike (every write to the second repeats one to the first), or not (EP 2 and
/// one rank: the second's expert writes span both halves of the first's).
JobSpec twoEngines(bool alike) {
    JobSpec spec;
    spec.model = "glm5-tiny";
    spec.mesh = {1, 2, 1};
    spec.fleet.engines = {
        {2, 1, 2, {}}, alike ? planner::EngineSpec{2, 1, 2, {}} : planner::EngineSpec{1, 1, 1, {}}};
    spec.checksum = true;
    spec.planner.stage_bytes = 4096;  // many stages
    return spec;
}

TEST(TrainerChecksums, AWriteSentToSeveralEnginesNamesTheFirstWithItsSourceBytes) {
    const JobSpec spec = twoEngines(true);
    const layout::Layout layout = jobLayout(spec);
    const planner::Plan plan = planner::buildPlan(layout, spec.mesh, spec.fleet, spec.planner);
    for (const planner::RankPlan &rp : plan.ranks) {
        const std::vector<uint32_t> same = firstWithSameSource(rp.writes);
        ASSERT_EQ(same.size(), rp.writes.size());
        size_t shared = 0;
        for (size_t i = 0; i < same.size(); ++i) {
            const planner::Write &w = rp.writes[i];
            const planner::Write &f = rp.writes[same[i]];
            ASSERT_LE(same[i], i);
            EXPECT_EQ(same[same[i]], same[i]) << "write " << i;
            EXPECT_EQ(f.src_offset, w.src_offset) << "write " << i;
            EXPECT_EQ(f.bytes, w.bytes) << "write " << i;
            if (same[i] == i) {
                for (size_t j = 0; j < i; ++j) {
                    const planner::Write &o = rp.writes[j];
                    EXPECT_FALSE(o.src_offset == w.src_offset && o.bytes == w.bytes)
                        << "writes " << j << " and " << i << " send the same bytes";
                }
            } else {
                EXPECT_NE(f.peer, w.peer) << "write " << i;
                ++shared;
            }
        }
        // The second engine's writes repeat the first's.
        EXPECT_EQ(shared * 2, rp.writes.size()) << "rank " << rp.rank;
    }
}

TEST(TrainerChecksums, EveryWriteGetsTheChecksumOfItsSourceBytes) {
    for (const bool alike : {true, false}) {
        testing::expectChecksumsOfSources(
            twoEngines(alike),
            [](TrainerCompute &c) {
                const std::byte *a = c.arena().data();
                return std::vector<std::byte>(a, a + c.arena().size());
            },
            alike ? "engines alike" : "engines unlike");
    }
}

}  // namespace
}  // namespace weightsync::engine
