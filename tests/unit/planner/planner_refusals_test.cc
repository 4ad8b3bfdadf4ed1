// Topologies the planner must refuse with a clear Error naming the problem (issues 14 and 19),
// and a validator that cannot loop on any plan it is given.

#include "common/error.h"
#include "layout/limits.h"
#include "layout/registry.h"
#include "planner/plan.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace weightsync::planner {
namespace {

Fleet fleet(int engines, int ranks, int ep, int tp = 1) {
    Fleet f;
    f.engines.assign(static_cast<size_t>(engines), EngineSpec{ranks, tp, ep, {}});
    return f;
}

void expectRefused(const TrainerMesh &mesh, const Fleet &f, const std::string &needle,
                   const std::string &model = "glm5-tiny") {
    const auto thrown =
        testing::thrownBy([&] { (void)buildPlan(layout::resolveLayout(model), mesh, f); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInvalidArgument) << thrown->message;
    EXPECT_NE(thrown->message.find(needle), std::string::npos) << thrown->message;
}

// glm5-tiny has 8 experts.
TEST(PlannerRefusals, ExpertParallelismThatDoesNotDivideTheExperts) {
    expectRefused(TrainerMesh{1, 3, 3}, fleet(1, 1, 1), "not divisible by trainer EP 3");
    expectRefused(TrainerMesh{1, 16, 16}, fleet(1, 1, 1), "not divisible by trainer EP 16");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(1, 3, 3),
                  "8 experts are not divisible by inference EP 3");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(2, 16, 16), "not divisible by inference EP 16");
}

TEST(PlannerRefusals, ZeroAndNegativeRanks) {
    expectRefused(TrainerMesh{1, 0, 1}, fleet(1, 1, 1), "fsdp and ep >= 1");
    expectRefused(TrainerMesh{-1, 2, 1}, fleet(1, 1, 1), "fsdp and ep >= 1");
    expectRefused(TrainerMesh{1, 2, 0}, fleet(1, 1, 1), "fsdp and ep >= 1");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(1, 0, 1), "ranks and tp must be >= 1");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(1, -4, 1), "ranks and tp must be >= 1");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(1, 2, 2, 0), "ranks and tp must be >= 1");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(1, 2, -2), "EP must be 1");
    expectRefused(TrainerMesh{1, 2, 2}, Fleet{}, "no engines");
}

// Counts that would overflow an int or allocate gigabytes are refused before the planner
// allocates anything.
TEST(PlannerRefusals, TopologiesOverTheLimits) {
    expectRefused(TrainerMesh{65536, 65536, 1}, fleet(1, 1, 1), "limit of 16384 trainer ranks");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(2, 10000, 1), "limit of 16384 ranks");
    expectRefused(TrainerMesh{1, 2, 2}, fleet(100000, 1, 1), "limit of 16384 ranks");
    // Each count within its limit, their product is not: 16384 trainer ranks x ~2000 GLM-5
    // conversions.
    expectRefused(TrainerMesh{1, 16384, 1}, fleet(1, 1, 1), "trainer ranks x conversions", "glm5");
    expectRefused(TrainerMesh{1, 8192, 1}, fleet(1, 8192, 1), "trainer ranks x inference ranks",
                  "qwen3-tiny");
}

TEST(PlannerRefusals, BadExpertMaps) {
    Fleet f = fleet(1, 2, 2);
    f.engines[0].expert_maps = {{0, 1, 2, 3}, {4, 5, 6, 6}};
    expectRefused(TrainerMesh{1, 2, 2}, f, "engine 0 rank 1: expert map lists an expert twice");
    f.engines[0].expert_maps = {{0, 1, 2, 3}, {4, 5, 6, 8}};
    expectRefused(TrainerMesh{1, 2, 2}, f, "expert id 8 out of range [0, 8)");
    f.engines[0].expert_maps = {{0, 1, 2, 3}, {4, 5, 6, -1}};
    expectRefused(TrainerMesh{1, 2, 2}, f, "expert id -1 out of range");
    f.engines[0].expert_maps = {{0, 1, 2, 3}};
    expectRefused(TrainerMesh{1, 2, 2}, f, "1 expert maps for 2 ranks");
}

TEST(PlannerRefusals, BadPlannerOptions) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    for (const PlannerOptions &o :
         {PlannerOptions{-1, 256, 0}, PlannerOptions{0, 0, 0},
          PlannerOptions{0, int64_t{1} << 62, 0}, PlannerOptions{0, 256, -5}}) {
        testing::expectThrows(Errc::kInvalidArgument, [&] {
            (void)buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 1, 1), o);
        });
    }
}

// Issue 19: a zero-sized conversion op (what a zero dimension produced) made the stage
// validator erase an element it had not inserted yet and spin forever. It is now an error.
TEST(PlannerRefusals, ValidatorRefusesAnEmptyOpInsteadOfLooping) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    PlannerOptions options;
    options.stage_bytes = 4096;  // many ops per rank, so that the sort meets equal offsets
    Plan plan = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 1, 1), options);
    RankPlan &rp = plan.ranks[0];
    ASSERT_GT(rp.ops.size(), 16u);
    for (ConvOp &op : rp.ops) op.r1 = op.r0;  // every op now covers no bytes
    const auto thrown = testing::thrownBy([&] { validatePlan(l, plan); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInternal);
    EXPECT_NE(thrown->message.find("fills no bytes"), std::string::npos) << thrown->message;
}

}  // namespace
}  // namespace weightsync::planner
