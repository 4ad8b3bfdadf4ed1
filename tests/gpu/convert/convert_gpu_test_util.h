#pragma once
// Helpers of the convert GPU tests: device <-> host copies and the plans they run.

#include "common/error.h"
#include "gpu/kernels/gpu_test_util.h"
#include "planner/plan.h"
#include "platform/cuda/resources.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace weightsync::convert::testing {

using kernels::testing::GpuTest;

inline std::vector<std::byte> download(const void *device, size_t bytes) {
    std::vector<std::byte> host(bytes);
    if (bytes > 0) {
        EXPECT_EQ(cudaMemcpy(host.data(), device, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return host;
}

inline platform::DeviceBuffer upload(const std::vector<std::byte> &host, int device = 0) {
    platform::DeviceBuffer buffer(std::max<size_t>(host.size(), 1), device);
    if (!host.empty()) {
        EXPECT_EQ(cudaMemcpy(buffer.data(), host.data(), host.size(), cudaMemcpyHostToDevice),
                  cudaSuccess);
    }
    return buffer;
}

/// Number of differing bytes; the first difference is reported once.
inline int64_t countDiffs(const std::vector<std::byte> &want, const std::vector<std::byte> &got,
                          const std::string &what) {
    EXPECT_EQ(want.size(), got.size()) << what;
    int64_t diffs = 0;
    for (size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
        if (want[i] != got[i] && diffs++ == 0) {
            ADD_FAILURE() << what << ": first difference at byte " << i;
        }
    }
    return diffs;
}

struct PlanCase {
    std::string model;
    planner::TrainerMesh mesh;
    planner::Fleet fleet;
    int64_t gather_threshold = int64_t{2} << 20;
};

/// The small configurations: glm5-tiny, and glm5-aligned with EP engines and with TP 2.
inline std::vector<PlanCase> planCases() {
    using planner::EngineSpec;
    std::vector<PlanCase> cases;
    cases.push_back({"glm5-tiny", {1, 2, 2}, {{EngineSpec{1, 1, 1, {}}}}, int64_t{2} << 20});
    cases.push_back({"glm5-tiny", {1, 2, 1}, {{EngineSpec{2, 1, 2, {}}}}, 0});
    cases.push_back(
        {"glm5-aligned", {1, 4, 2}, {{EngineSpec{2, 1, 2, {}}, EngineSpec{2, 1, 2, {}}}}, 0});
    cases.push_back({"glm5-aligned", {2, 2, 2}, {{EngineSpec{2, 2, 1, {}}}}, 4096});
    return cases;
}

}  // namespace weightsync::convert::testing
