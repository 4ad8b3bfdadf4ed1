// The planner's property tests: for random trainer meshes (FSDP x EP x HSDP) and inference fleets
// (EP, replicas, TP, explicit expert maps) on the small configs, executing the plan with memcpy
// over the reference kernels reproduces the reference converter's output byte for byte on every
// inference rank, for two weight versions in a row. The executor and the reference converter
// (convert/) are the oracle; the plan is what is tested.

#include "convert/host_weights.h"
#include "convert/inmemory_executor.h"
#include "convert/reference.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace weightsync::planner {
namespace {

using convert::allocatePeerTensors;
using convert::HostWeights;
using convert::InMemoryExecutor;
using convert::PeerTensors;
using convert::RankView;
using convert::referenceLocalTensors;
using convert::SourceProvider;
using convert::SyntheticGenerator;

struct Case {
    std::string model;
    TrainerMesh mesh;
    Fleet fleet;
    int64_t threshold = 0;
    int64_t stage_bytes = PlannerOptions{}.stage_bytes;
    std::string describe() const {
        std::string s = model + " mesh " + std::to_string(mesh.replicas) + "x" +
                        std::to_string(mesh.fsdp) + " ep" + std::to_string(mesh.ep) +
                        " threshold " + std::to_string(threshold) + " stage bytes " +
                        std::to_string(stage_bytes) + " engines";
        for (const EngineSpec &e : fleet.engines) {
            s += " [" + std::to_string(e.ranks) + " ranks tp" + std::to_string(e.tp) + " ep" +
                 std::to_string(e.ep) + (e.expert_maps.empty() ? "" : " mapped") + "]";
        }
        return s;
    }
};

Case randomCase(std::mt19937 &rng, const std::string &model, bool allow_tp) {
    const auto pick = [&](std::vector<int> options) {
        return options[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
    };
    Case c;
    c.model = model;
    c.mesh.fsdp = pick({1, 2, 4});
    std::vector<int> eps;
    for (int e : {1, 2, 4}) {
        if (c.mesh.fsdp % e == 0) eps.push_back(e);
    }
    c.mesh.ep = pick(eps);
    c.mesh.replicas = pick({1, 1, 2});
    c.threshold = pick({0, 4096, 2 << 20});
    c.stage_bytes = pick({0, 1024, 4096, 65536, 256 << 20});
    const int engines = pick({1, 2});
    for (int e = 0; e < engines; ++e) {
        EngineSpec s;
        s.ranks = pick({1, 2, 4});
        s.tp = allow_tp && s.ranks % 2 == 0 ? pick({1, 2}) : 1;
        s.ep = pick({1, s.ranks});
        if (s.ep > 1 && pick({0, 1}) == 1) {
            // An EPLB-like placement: a shuffled, non-contiguous expert map.
            std::vector<int64_t> ids(8);
            std::iota(ids.begin(), ids.end(), 0);
            std::shuffle(ids.begin(), ids.end(), rng);
            const size_t per = ids.size() / static_cast<size_t>(s.ranks);
            for (int r = 0; r < s.ranks; ++r) {
                s.expert_maps.emplace_back(ids.begin() + r * per, ids.begin() + (r + 1) * per);
            }
        }
        c.fleet.engines.push_back(s);
    }
    return c;
}

// Executes the plan for two steps and compares every byte of every peer with the reference.
void checkCase(const Case &c) {
    SCOPED_TRACE(c.describe());
    const layout::Layout layout = layout::resolveLayout(c.model);
    PlannerOptions options;
    options.gather_threshold_bytes = c.threshold;
    options.stage_bytes = c.stage_bytes;
    const Plan plan = buildPlan(layout, c.mesh, c.fleet, options);
    HostWeights weights(layout);
    InMemoryExecutor executor(layout, plan);
    std::vector<PeerTensors> peers = allocatePeerTensors(layout, plan);
    std::vector<std::unique_ptr<RankView>> views;
    std::vector<const SourceProvider *> providers;
    for (int r = 0; r < c.mesh.ranks(); ++r) {
        views.push_back(std::make_unique<RankView>(weights, c.mesh, r));
        providers.push_back(views.back().get());
    }
    std::vector<std::vector<std::byte>> previous;
    for (uint64_t step = 1; step <= 2; ++step) {
        weights.load(SyntheticGenerator(layout, 7, step));
        for (PeerTensors &p : peers) {
            for (auto &t : p) std::fill(t.begin(), t.end(), std::byte{0xA5});  // poison
        }
        executor.execute(providers, peers);
        size_t changed = 0;
        for (size_t q = 0; q < plan.peers.size(); ++q) {
            const auto expected = referenceLocalTensors(layout, plan.peers[q], weights);
            for (size_t d = 0; d < expected.size(); ++d) {
                ASSERT_EQ(peers[q][d].size(), expected[d].size()) << layout.dests()[d].name;
                ASSERT_TRUE(peers[q][d] == expected[d])
                    << "step " << step << ": '" << layout.dests()[d].name << "' differs on "
                    << plan.peers[q].name;
            }
            if (q == 0) {
                for (size_t d = 0; d < expected.size(); ++d) {
                    if (step == 2 && expected[d] != previous[d]) ++changed;
                }
                previous = expected;
            }
        }
        if (step == 2) {
            EXPECT_GT(changed, layout.dests().size() / 2) << "weights did not change";
        }
    }
}

TEST(PlanProperty, RandomMeshesAndFleetsAreBitExact) {
    std::mt19937 rng(20261128);
    for (int trial = 0; trial < 10; ++trial) checkCase(randomCase(rng, "glm5-tiny", false));
    for (int trial = 0; trial < 12; ++trial) checkCase(randomCase(rng, "glm5-aligned", true));
    for (int trial = 0; trial < 5; ++trial) checkCase(randomCase(rng, "qwen3-tiny", false));
}

TEST(PlanProperty, ProductionLikeShapeScaledDown) {
    // FSDP 4 x EP 2, two EP engines, per-shard wherever alignment allows.
    Case c{"glm5-aligned", TrainerMesh{1, 4, 2}, {}, 0, 2048};
    c.fleet.engines = {EngineSpec{2, 1, 2, {}}, EngineSpec{2, 1, 2, {}}};
    checkCase(c);
    c.mesh = TrainerMesh{2, 2, 2};  // HSDP
    checkCase(c);
    c.fleet.engines = {EngineSpec{2, 2, 1, {}}};  // TP 2 with experts split by TP
    checkCase(c);
}

TEST(PlanProperty, CorruptedPlanIsCaught) {
    // The comparison can fail: shift one write by a byte and the check must see it.
    const layout::Layout layout = layout::resolveLayout("glm5-tiny");
    Fleet fleet;
    fleet.engines = {EngineSpec{1, 1, 1, {}}};
    Plan plan = buildPlan(layout, TrainerMesh{1, 2, 2}, fleet);
    plan.ranks[1].writes.front().src_offset += 1;
    HostWeights weights(layout);
    weights.load(SyntheticGenerator(layout, 7, 1));
    InMemoryExecutor executor(layout, plan);
    std::vector<PeerTensors> peers = allocatePeerTensors(layout, plan);
    RankView r0(weights, plan.mesh, 0);
    RankView r1(weights, plan.mesh, 1);
    executor.execute({&r0, &r1}, peers);
    const auto expected = referenceLocalTensors(layout, plan.peers[0], weights);
    size_t mismatched = 0;
    for (size_t d = 0; d < expected.size(); ++d) mismatched += peers[0][d] != expected[d];
    EXPECT_EQ(mismatched, 1u);
}

TEST(PlanProperty, WriteStagedBeforeItsConversionCopiesPoison) {
    // The executor runs stage by stage over a poisoned arena, like the engine: a write moved
    // ahead of the stage that converts its bytes lands poison, and the comparison sees it.
    const layout::Layout layout = layout::resolveLayout("glm5-tiny");
    Fleet fleet;
    fleet.engines = {EngineSpec{1, 1, 1, {}}};
    PlannerOptions options;
    options.stage_bytes = 4096;
    Plan plan = buildPlan(layout, TrainerMesh{1, 1, 1}, fleet, options);
    std::vector<Write> &writes = plan.ranks[0].writes;
    ASSERT_GT(writes.back().stage, 0U);
    Write early = writes.back();
    writes.pop_back();
    early.stage = 0;
    writes.insert(writes.begin(), early);
    HostWeights weights(layout);
    weights.load(SyntheticGenerator(layout, 7, 1));
    InMemoryExecutor executor(layout, plan);
    std::vector<PeerTensors> peers = allocatePeerTensors(layout, plan);
    RankView r0(weights, plan.mesh, 0);
    executor.execute({&r0}, peers);
    const auto expected = referenceLocalTensors(layout, plan.peers[0], weights);
    EXPECT_NE(peers[0][early.dest], expected[early.dest]);
}

}  // namespace
}  // namespace weightsync::planner
