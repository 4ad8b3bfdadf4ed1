#include "common/error.h"
#include "layout/glm5.h"
#include "layout/registry.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "planner/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace weightsync::planner {
namespace {

Fleet fleet(int engines, int ranks, int ep, int tp = 1) {
    Fleet f;
    f.engines.assign(static_cast<size_t>(engines), EngineSpec{ranks, tp, ep, {}});
    return f;
}

const ConvOp *findOp(const RankPlan &rp, const layout::Layout &l, const std::string &source) {
    const uint32_t idx = static_cast<uint32_t>(l.sourceIndex(source));
    for (const ConvOp &op : rp.ops) {
        if (op.source == idx) return &op;
    }
    return nullptr;
}

// The production shape of the issue: 64 trainer ranks (FSDP 64, EP 8), two engines of 16 ranks
// with EP 16, non-experts replicated.
TEST(Planner, Glm5ProductionShapeIsBalancedAndSmall) {
    const layout::Layout l = layout::resolveLayout("glm5");
    const Plan plan = buildPlan(l, TrainerMesh{1, 64, 8}, fleet(2, 16, 16));
    const PlanStats s = planStats(plan);
    EXPECT_EQ(s.writing_ranks, 64);
    EXPECT_LE(static_cast<double>(s.trainer_send_bytes_max) / s.trainer_send_bytes_mean, 1.05);
    EXPECT_LT(s.writes_per_trainer_rank_max, 11800);
    // Every inference rank receives its 16 experts x 75 layers plus all non-experts.
    const int64_t expert_bytes_per_layer =
        16 * (4096LL * 6144 + 6144LL * 2048 + (32 * 48 + 48 * 16) * 4LL);
    EXPECT_GT(s.inference_recv_bytes_max, 75 * expert_bytes_per_layer);
    // Slots hold only what each rank converts (the reference design held ~25.9 GB per rank).
    EXPECT_LT(s.slot_bytes_per_trainer_rank_max, 20'000'000'000LL);
}

TEST(Planner, PerShardVersusGatherRules) {
    const layout::Layout l = layout::resolveLayout("glm5");
    const Plan plan = buildPlan(l, TrainerMesh{1, 64, 8}, fleet(2, 16, 16));
    const RankPlan &r5 = plan.ranks[5];
    // q_b_proj: 16384 rows / 64 = 256, 128-aligned, large -> per shard on every rank.
    const ConvOp *qb = findOp(r5, l, "model.layers.3.self_attn.q_b_proj.weight");
    ASSERT_NE(qb, nullptr);
    EXPECT_FALSE(qb->full);
    EXPECT_EQ(qb->r0, 5 * 256);
    EXPECT_EQ(qb->r1, 6 * 256);
    // Router: 256 rows / 64 = 4 rows, unquantized, 3 MB of bf16 -> per shard.
    const ConvOp *router = findOp(r5, l, "model.layers.3.mlp.router.gate.weight");
    ASSERT_NE(router, nullptr);
    EXPECT_FALSE(router->full);
    // kv_b_proj: 28672 / 64 = 448 rows, not 128-aligned -> gathered on some rank, whole.
    int holders = 0;
    for (const RankPlan &rp : plan.ranks) {
        const ConvOp *kvb = findOp(rp, l, "model.layers.3.self_attn.kv_b_proj.weight");
        if (kvb == nullptr) continue;
        ++holders;
        EXPECT_TRUE(kvb->full);
        EXPECT_EQ(kvb->r1 - kvb->r0, 28672);
    }
    EXPECT_GE(holders, 1);
    EXPECT_LE(holders, 32);  // never more than one converter per receiving peer
    // Experts: rank 5 = (EP rank 5 % 8 = 5, inner 0) owns 4 experts starting at 5 * 32.
    const ConvOp *w1 = findOp(r5, l, "model.layers.3.mlp.experts.w1");
    ASSERT_NE(w1, nullptr);
    EXPECT_EQ(w1->g0, 5 * 32);
    EXPECT_EQ(w1->g1 - w1->g0, 4);
}

TEST(Planner, GatheredTensorsUseEveryRank) {
    const layout::Layout l = layout::resolveLayout("glm5", 4);
    const Plan plan = buildPlan(l, TrainerMesh{1, 64, 8}, fleet(2, 16, 16));
    int ranks_with_gathers = 0;
    for (const RankPlan &rp : plan.ranks) ranks_with_gathers += rp.full_sources.empty() ? 0 : 1;
    // Gathered tensors go to every rank: round-robin over the 32 inference ranks would leave the
    // upper half of the 64 trainer ranks idle while the others send everything.
    EXPECT_EQ(ranks_with_gathers, 64);
}

TEST(Planner, ExpertWritesCoalesceAcrossExperts) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    // 2 trainer ranks own 4 experts each; one inference rank holds all 8: each rank's 4 experts
    // land contiguously, so w13 and its scales take one write each.
    const Plan plan = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 1, 1));
    const uint32_t w13 =
        static_cast<uint32_t>(l.destIndex("model.layers.1.mlp.experts.w13_weight"));
    for (const RankPlan &rp : plan.ranks) {
        const auto n = std::count_if(rp.writes.begin(), rp.writes.end(),
                                     [&](const Write &w) { return w.dest == w13; });
        EXPECT_EQ(n, 1);
    }
}

// Slot bytes each stage's ops produce.
std::map<uint32_t, int64_t> stageBytes(const RankPlan &rp) {
    std::map<uint32_t, int64_t> bytes;
    for (const ConvOp &op : rp.ops) bytes[op.stage] += outputBytes(op);
    return bytes;
}

// GLM-5 at real dimensions: a rank's 128 experts of one layer are 4.8 GB of slots. Stages of
// about stage_bytes let the first writes start after a fraction of that is converted.
TEST(Planner, LargeConversionsSplitIntoStagesOfAboutStageBytes) {
    const layout::Layout l = layout::resolveLayout("glm5", 5);
    PlannerOptions options;
    options.stage_bytes = int64_t{256} << 20;
    const Plan plan = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 2, 2), options);
    for (const RankPlan &rp : plan.ranks) {
        const auto bytes = stageBytes(rp);
        int64_t total = 0, largest = 0;
        for (const auto &[stage, b] : bytes) {
            total += b;
            largest = std::max(largest, b);
        }
        EXPECT_EQ(bytes.size(), bytes.rbegin()->first + 1) << "stages are numbered densely";
        EXPECT_LE(largest, options.stage_bytes);
        EXPECT_GE(static_cast<int64_t>(bytes.size()), total / options.stage_bytes);
        // Writes of one expert range split at stage boundaries, nothing else.
        EXPECT_LT(rp.writes.size(), 4 * bytes.size() + 200);
    }
    // Without a target: one stage per conversion, as many stages as conversions on the rank.
    options.stage_bytes = 0;
    const Plan whole = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 2, 2), options);
    for (const RankPlan &rp : whole.ranks) {
        std::vector<uint32_t> conversions;
        for (const ConvOp &op : rp.ops) conversions.push_back(op.conversion);
        conversions.erase(std::unique(conversions.begin(), conversions.end()), conversions.end());
        EXPECT_EQ(stageBytes(rp).size(), conversions.size());
    }
}

// Dense layers have one matrix per conversion: they split by runs of 128-row blocks.
TEST(Planner, SingleMatricesSplitOnBlockRows) {
    const layout::Layout l = layout::resolveLayout("qwen3-8b", 2);
    PlannerOptions options;
    options.stage_bytes = int64_t{8} << 20;
    const Plan plan = buildPlan(l, TrainerMesh{1, 1, 1}, fleet(1, 1, 1), options);
    const RankPlan &rp = plan.ranks[0];
    for (const auto &[stage, b] : stageBytes(rp)) EXPECT_LE(b, options.stage_bytes) << stage;
    for (const ConvOp &op : rp.ops) {
        if (op.scale_offset >= 0) {
            EXPECT_EQ(op.r0 % 128, 0) << "FP8 ops start on block rows";
        }
    }
}

// The validator proves no write is staged before the op that fills its bytes.
TEST(Planner, ValidationRejectsAWriteStagedTooEarly) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    PlannerOptions options;
    options.stage_bytes = 4096;
    Plan plan = buildPlan(l, TrainerMesh{1, 2, 2}, fleet(1, 1, 1), options);
    RankPlan &rp = plan.ranks[0];
    ASSERT_GT(rp.writes.back().stage, 0U);
    Write early = rp.writes.back();
    rp.writes.pop_back();
    early.stage = 0;
    rp.writes.insert(rp.writes.begin(), early);  // still sorted by stage
    try {
        validatePlan(l, plan);
        FAIL() << "a write posted before its bytes are converted was accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInternal);
        EXPECT_NE(std::string(e.what()).find("posted after stage 0"), std::string::npos)
            << e.what();
    }
}

TEST(Planner, HsdpOnlyReplicaZeroWritesByShardIndex) {
    const layout::Layout l = layout::resolveLayout("glm5-aligned");
    PlannerOptions o;
    o.gather_threshold_bytes = 0;
    const Plan one = buildPlan(l, TrainerMesh{1, 4, 2}, fleet(2, 2, 2), o);
    const Plan two = buildPlan(l, TrainerMesh{2, 4, 2}, fleet(2, 2, 2), o);
    ASSERT_EQ(two.ranks.size(), 8u);
    for (int r = 0; r < 4; ++r) {
        EXPECT_EQ(two.ranks[r].send_bytes, one.ranks[r].send_bytes);
        EXPECT_EQ(two.ranks[r].writes.size(), one.ranks[r].writes.size());
    }
    for (int r = 4; r < 8; ++r) {
        EXPECT_TRUE(two.ranks[r].writes.empty());
        EXPECT_EQ(two.ranks[r].arena_bytes, 0);
    }
}

TEST(Planner, IsDeterministic) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const Plan a = buildPlan(l, TrainerMesh{1, 4, 2}, fleet(2, 2, 2));
    const Plan b = buildPlan(l, TrainerMesh{1, 4, 2}, fleet(2, 2, 2));
    for (size_t r = 0; r < a.ranks.size(); ++r) {
        ASSERT_EQ(a.ranks[r].writes.size(), b.ranks[r].writes.size());
        for (size_t i = 0; i < a.ranks[r].writes.size(); ++i) {
            EXPECT_EQ(a.ranks[r].writes[i].src_offset, b.ranks[r].writes[i].src_offset);
            EXPECT_EQ(a.ranks[r].writes[i].dest_offset, b.ranks[r].writes[i].dest_offset);
        }
    }
}

TEST(Planner, TensorParallelGeometry) {
    const layout::Layout l = layout::resolveLayout("glm5-aligned");
    PeerSpec peer;
    peer.tp = 2;
    peer.tp_rank = 1;
    peer.experts = {0, 1, 2, 3, 4, 5, 6, 7};
    // Column-parallel fused gate_up: each part split, local = [gate half 1; up half 1].
    const auto &convs = l.conversions();
    const auto conv = std::find_if(convs.begin(), convs.end(), [](const layout::Conversion &c) {
        return c.dest == "model.layers.0.mlp.gate_up_proj.weight";
    });
    LocalGeometry g = localGeometry(l, *conv, peer);
    EXPECT_EQ(g.rows, 1024);
    EXPECT_EQ(g.part_lo, (std::vector<int64_t>{512, 512}));
    EXPECT_EQ(g.part_local, (std::vector<int64_t>{0, 512}));
    EXPECT_EQ(g.cols, 512);
    // Row-parallel o_proj: columns split.
    const auto o = std::find_if(convs.begin(), convs.end(), [](const layout::Conversion &c) {
        return c.dest == "model.layers.0.self_attn.o_proj.weight";
    });
    g = localGeometry(l, *o, peer);
    EXPECT_EQ(g.col_lo, 128);
    EXPECT_EQ(g.cols, 128);
    EXPECT_EQ(g.rows, 512);
}

void expectPlanError(const std::string &model, TrainerMesh mesh, const Fleet &f,
                     const std::string &needle) {
    try {
        (void)buildPlan(layout::resolveLayout(model), mesh, f);
        FAIL() << "expected an error mentioning " << needle;
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(Planner, RejectsShapesItCannotSplit) {
    expectPlanError("glm5-tiny", TrainerMesh{1, 4, 3}, fleet(1, 2, 2), "EP degree 3");
    expectPlanError("glm5-tiny", TrainerMesh{1, 3, 1}, fleet(1, 2, 2), "not divisible by the FSDP");
    expectPlanError("glm5-tiny", TrainerMesh{1, 2, 2}, fleet(1, 3, 3),
                    "not divisible by inference EP");
    expectPlanError("glm5-tiny", TrainerMesh{1, 2, 2}, fleet(1, 2, 2, 2), "o_proj");
    expectPlanError("glm5-tiny", TrainerMesh{1, 2, 2}, fleet(1, 4, 2), "EP must be 1");
    Fleet holes = fleet(1, 2, 2);
    holes.engines[0].expert_maps = {{0, 1, 2, 3}, {0, 1, 2, 3}};
    expectPlanError("glm5-tiny", TrainerMesh{1, 2, 2}, holes, "no rank holds expert 4");
}

}  // namespace
}  // namespace weightsync::planner
