// The CUDA trainer compute's checksums of its writes' source bytes: one per write, equal to the
// CPU reference of the bytes in its device arena, also for the writes it sends to several
// engines, whose range it sums once (firstWithSameSource).

#include "engine/job.h"
#include "trainer_checksums_check.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

namespace weightsync::engine {
namespace {

TEST(TrainerChecksumsGpu, EveryWriteGetsTheChecksumOfItsSourceBytes) {
    int count = 0;
    if (const cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(err) << ")";
    }
    for (const bool alike : {true, false}) {
        JobSpec spec;
        spec.model = "glm5-tiny";
        spec.device = Device::kCuda;
        spec.mesh = {1, 2, 1};
        spec.fleet.engines = {
            {2, 1, 2, {}},
            alike ? planner::EngineSpec{2, 1, 2, {}} : planner::EngineSpec{1, 1, 1, {}}};
        spec.checksum = true;
        spec.planner.stage_bytes = 4096;  // many stages
        testing::expectChecksumsOfSources(
            spec,
            [](TrainerCompute &c) {
                std::vector<std::byte> host(c.arena().size());
                EXPECT_EQ(
                    cudaMemcpy(host.data(), c.arena().data(), host.size(), cudaMemcpyDeviceToHost),
                    cudaSuccess);
                return host;
            },
            alike ? "engines alike" : "engines unlike");
    }
}

}  // namespace
}  // namespace weightsync::engine
