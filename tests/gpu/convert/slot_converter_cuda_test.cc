// CudaSyntheticWeights + CudaSlotConverter against SyntheticWeights + convertOpsCpu on real plans:
// every trainer rank's shards and its whole arena (padding included), bit for bit, two versions.

#include "convert/cuda/cuda_slot_converter.h"
#include "convert/cuda/cuda_synthetic_weights.h"
#include "convert/slot_converter.h"
#include "convert/synthetic.h"
#include "gpu/convert/convert_gpu_test_util.h"
#include "layout/registry.h"
#include "planner/plan.h"

namespace weightsync::convert {
namespace {

using testing::countDiffs;
using testing::download;

constexpr uint64_t kSeed = 7;

class ConvertSlotConverterGpu : public testing::GpuTest {
  protected:
    void checkRank(const layout::Layout &l, const planner::Plan &plan, int rank, int max_ctas = 0) {
        SCOPED_TRACE("rank " + std::to_string(rank));
        const planner::RankPlan &rp = plan.ranks[static_cast<size_t>(rank)];
        SyntheticWeights cpu(l, plan.mesh, rank, rp.full_sources, kSeed);
        CudaSyntheticWeights gpu(l, plan.mesh, rank, rp.full_sources, kSeed, 0);
        EXPECT_EQ(gpu.bytes(), cpu.bytes());
        CudaSlotConverter converter(l, 0, max_ctas);
        const auto arena_bytes = static_cast<size_t>(rp.arena_bytes);
        platform::DeviceBuffer device_arena(std::max<size_t>(arena_bytes, 1), 0);
        for (uint64_t step = 1; step <= 2; ++step) {
            cpu.generate(step);
            gpu.generate(step, stream_);
            WS_CUDA_OK(cudaStreamSynchronize(stream_));
            for (uint32_t i = 0; i < l.sources().size(); ++i) {
                const SourceShard want = cpu.shard(i);
                const SourceShard got = gpu.shard(i);
                ASSERT_EQ(want.g0, got.g0);
                ASSERT_EQ(want.groups, got.groups);
                ASSERT_EQ(want.r0, got.r0);
                ASSERT_EQ(want.rows, got.rows);
                const size_t bytes = static_cast<size_t>(want.groups * want.rows * want.cols) *
                                     dtypeSize(want.dtype);
                const auto *from = static_cast<const std::byte *>(want.data);
                EXPECT_EQ(countDiffs({from, from + bytes}, download(got.data, bytes),
                                     "shard of " + l.sources()[i].name),
                          0);
            }
            for (uint32_t i : rp.full_sources) {
                const SourceShard want = cpu.full(i);
                const size_t bytes = static_cast<size_t>(want.groups * want.rows * want.cols) *
                                     dtypeSize(want.dtype);
                const auto *from = static_cast<const std::byte *>(want.data);
                EXPECT_EQ(countDiffs({from, from + bytes}, download(gpu.full(i).data, bytes),
                                     "gathered " + l.sources()[i].name),
                          0);
            }
            // Same poison on both sides: padding between slots must match too.
            std::vector<std::byte> arena(arena_bytes, std::byte{0xA5});
            device_arena.fill(0xA5);
            convertOpsCpu(l, rp.ops, cpu, arena.data(), rp.arena_bytes);
            // Stage by stage, as the trainer agent converts.
            for (size_t next = 0; next < rp.ops.size();) {
                size_t end = next;
                while (end < rp.ops.size() && rp.ops[end].stage == rp.ops[next].stage) ++end;
                converter.enqueue(std::span(rp.ops).subspan(next, end - next), gpu,
                                  device_arena.as<std::byte>(), rp.arena_bytes, stream_);
                next = end;
            }
            EXPECT_EQ(converter.takeNonfiniteBlocks(stream_), 0U);
            EXPECT_EQ(countDiffs(arena, download(device_arena.data(), arena_bytes), "arena"), 0)
                << "step " << step;
        }
    }
};

TEST_F(ConvertSlotConverterGpu, ArenasMatchTheCpuConverterOnRealPlans) {
    for (const testing::PlanCase &c : testing::planCases()) {
        SCOPED_TRACE(c.model + " fsdp " + std::to_string(c.mesh.fsdp) + " ep " +
                     std::to_string(c.mesh.ep));
        const layout::Layout l = layout::resolveLayout(c.model);
        planner::PlannerOptions options;
        options.gather_threshold_bytes = c.gather_threshold;
        const planner::Plan plan = planner::buildPlan(l, c.mesh, c.fleet, options);
        for (int rank = 0; rank < c.mesh.ranks(); ++rank) {
            if (plan.ranks[static_cast<size_t>(rank)].arena_bytes == 0) continue;
            checkRank(l, plan, rank);
        }
        // Small stages (experts and block rows split) on capped grids: the same arena.
        options.stage_bytes = 8192;
        const planner::Plan staged = planner::buildPlan(l, c.mesh, c.fleet, options);
        for (int rank = 0; rank < c.mesh.ranks(); ++rank) {
            if (staged.ranks[static_cast<size_t>(rank)].arena_bytes == 0) continue;
            checkRank(l, staged, rank, 3);
        }
    }
}

TEST_F(ConvertSlotConverterGpu, OpsOutsideTheArenaAreRejectedBeforeAnyLaunch) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    planner::Fleet fleet;
    fleet.engines = {planner::EngineSpec{1, 1, 1, {}}};
    const planner::Plan plan = planner::buildPlan(l, planner::TrainerMesh{1, 1, 1}, fleet);
    const planner::RankPlan &rp = plan.ranks[0];
    CudaSyntheticWeights gpu(l, plan.mesh, 0, rp.full_sources, kSeed, 0);
    CudaSlotConverter converter(l, 0);
    platform::DeviceBuffer arena(static_cast<size_t>(rp.arena_bytes), 0);
    try {
        converter.enqueue(rp.ops, gpu, arena.as<std::byte>(), rp.arena_bytes / 2, stream_);
        ADD_FAILURE() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInternal);
    }
}

}  // namespace
}  // namespace weightsync::convert
