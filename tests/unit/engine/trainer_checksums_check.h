#pragma once
// What a trainer's checksums must be (engine/compute.h), shared by the CPU test
// (tests/unit/engine/trainer_checksums_test.cc) and the CUDA one (tests/gpu/engine/): one per
// write, equal to the reference checksum of the bytes it sends, for every rank of `spec`'s mesh
// and two versions (the weights change in between). `host_arena` copies a compute's arena to
// the host.

#include "engine/compute.h"
#include "engine/job.h"
#include "kernels/checksum/checksum_ref.h"
#include "planner/plan.h"

#include <gtest/gtest.h>

#include <functional>
#include <span>
#include <string>
#include <vector>

namespace weightsync::engine::testing {

inline void expectChecksumsOfSources(
    const JobSpec &spec, const std::function<std::vector<std::byte>(TrainerCompute &)> &host_arena,
    const std::string &what) {
    const layout::Layout layout = jobLayout(spec);
    const planner::Plan plan = planner::buildPlan(layout, spec.mesh, spec.fleet, spec.planner);
    for (const planner::RankPlan &rp : plan.ranks) {
        const auto compute = makeTrainerCompute(spec, layout, rp.rank, rp, nullptr);
        for (uint64_t version = 1; version <= 2; ++version) {
            compute->generate(version);
            size_t next_op = 0;
            size_t next_write = 0;
            while (next_op < rp.ops.size()) {
                const uint32_t stage = rp.ops[next_op].stage;
                size_t end = next_op;
                while (end < rp.ops.size() && rp.ops[end].stage == stage) ++end;
                compute->waitFence(
                    compute->convert(std::span(rp.ops).subspan(next_op, end - next_op)));
                const size_t first = next_write;
                while (next_write < rp.writes.size() && rp.writes[next_write].stage <= stage) {
                    ++next_write;
                }
                compute->checksumWrites(first, next_write - first);
                next_op = end;
            }
            ASSERT_EQ(next_write, rp.writes.size());
            const std::vector<uint64_t> sums = compute->takeChecksums();
            ASSERT_EQ(sums.size(), rp.writes.size());
            const std::vector<std::byte> arena = host_arena(*compute);
            for (size_t i = 0; i < sums.size(); ++i) {
                const planner::Write &w = rp.writes[i];
                EXPECT_EQ(sums[i], kernels::checksumRef(arena.data() + w.src_offset,
                                                        static_cast<uint64_t>(w.bytes)))
                    << what << ": rank " << rp.rank << " version " << version << " write " << i;
            }
        }
    }
}

}  // namespace weightsync::engine::testing
