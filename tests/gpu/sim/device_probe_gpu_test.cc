// The GPU generation probe: it reads device weights step after step, parks (no step while
// parked), follows a rebind to another arena, and its longest gap covers the time it was
// parked. And the demo on one GPU with --flip: every rank swaps, every version verifies, and the
// probe's gap is reported; with --flip-copy the ranks copy instead.

#include "common/error.h"
#include "engine/hooks.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#include "sim/cuda/device_probe.h"
#include "support/run_demo.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace weightsync::sim {
namespace {

using namespace std::chrono_literals;

class GpuProbe : public ::testing::Test {
  protected:
    void SetUp() override {
        int count = 0;
        const cudaError_t err = cudaGetDeviceCount(&count);
        if (err != cudaSuccess || count == 0) {
            (void)cudaGetLastError();
            GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(err) << ", " << count << ")";
        }
    }
};

engine::LocalWeights deviceWeights(const platform::DeviceBuffer &a,
                                   const platform::DeviceBuffer &b) {
    engine::LocalWeights w;
    w.tensors = {
        {"a", {static_cast<int64_t>(a.size())}, DType::kU8, static_cast<int64_t>(a.size())},
        {"b", {static_cast<int64_t>(b.size())}, DType::kU8, static_cast<int64_t>(b.size())}};
    w.data = {a.as<std::byte>(), b.as<std::byte>()};
    w.on_device = true;
    w.device = 0;
    return w;
}

bool readsPast(const ReadLoop &probe, uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (probe.reads() <= n) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

TEST_F(GpuProbe, StepsParksFollowsARebindAndMeasuresTheGap) {
    const platform::DeviceBuffer live_a(size_t{96} << 20, 0), live_b(size_t{5} << 20, 0);
    const platform::DeviceBuffer staged_a(size_t{96} << 20, 0), staged_b(size_t{5} << 20, 0);
    live_a.fill(1);
    live_b.fill(2);
    staged_a.fill(3);
    staged_b.fill(4);
    const auto probe = makeDeviceProbe(deviceWeights(live_a, live_b));
    ASSERT_TRUE(probe->canRebind());
    ASSERT_TRUE(readsPast(*probe, 4)) << "the probe does not step";
    probe->pause();
    const uint64_t parked = probe->reads();
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(probe->reads(), parked);  // no step while parked
    probe->rebind(deviceWeights(staged_a, staged_b));
    probe->resume();
    ASSERT_TRUE(readsPast(*probe, parked + 4)) << "the probe stopped stepping after the rebind";
    // Its last step before the pause to its first after: at least the 50 ms it was parked.
    EXPECT_GE(probe->takeLongestGapSeconds(), 0.050);
}

TEST_F(GpuProbe, RefusesHostTensors) {
    engine::LocalWeights host;
    EXPECT_THROW((void)makeDeviceProbe(host), Error);
}

TEST_F(GpuProbe, DemoFlipSwapsVerifiesAndReportsTheProbeGap) {
    for (const std::string flip : {"--flip", "--flip-copy"}) {
        SCOPED_TRACE(flip);
        const testing::DemoResult r =
            testing::runDemo("--device cuda --steps 3 --checksum " + flip);
        ASSERT_EQ(r.exit_code, 0) << r.output;
        ASSERT_TRUE(r.json.is_object()) << r.output;
        EXPECT_TRUE(r.json.at("verified").get<bool>()) << r.output;
        EXPECT_EQ(r.json.at("flip"), flip == "--flip" ? "swap" : "copy") << r.output;
        for (const auto &step : r.json.at("per_step")) {
            EXPECT_TRUE(step.at("verified").get<bool>());
            EXPECT_GE(step.at("probe_gap_s").get<double>(), 0.0) << "no probe on the GPU ranks";
        }
    }
}

}  // namespace
}  // namespace weightsync::sim
