// The GPU reference against convert::referenceLocalTensors (CPU) for every inference rank of the
// small configurations, and its on-device comparison: zero on the CPU's bytes, exact counts of
// corrupted bytes.

#include "convert/cuda/cuda_reference.h"
#include "convert/reference.h"
#include "gpu/convert/convert_gpu_test_util.h"
#include "layout/registry.h"
#include "planner/geometry.h"
#include "planner/plan.h"

namespace weightsync::convert {
namespace {

using testing::countDiffs;
using testing::download;
using testing::upload;

constexpr uint64_t kSeed = 5;

class ConvertReferenceGpu : public testing::GpuTest {};

TEST_F(ConvertReferenceGpu, MatchesTheCpuReferenceOnEveryPeer) {
    for (const testing::PlanCase &c : testing::planCases()) {
        const layout::Layout l = layout::resolveLayout(c.model);
        const auto peers = planner::fleetPeers(c.fleet, planner::layoutExperts(l));
        CudaReference reference(l, kSeed, 0);
        for (const planner::PeerSpec &peer : peers) {
            SCOPED_TRACE(c.model + " " + peer.name);
            const uint64_t step = 3;
            const auto want = referenceLocalTensors(l, peer, SyntheticGenerator(l, kSeed, step));
            std::vector<platform::DeviceBuffer> got;
            for (const auto &t : want) got.emplace_back(std::max<size_t>(t.size(), 1), 0);
            for (const layout::Conversion &conv : l.conversions()) {
                const size_t vi = l.destIndex(conv.dest);
                void *scales = conv.scale.empty() ? nullptr : got[l.destIndex(conv.scale)].data();
                reference.convert(conv, peer, step, got[vi].data(), scales, stream_);
            }
            WS_CUDA_OK(cudaStreamSynchronize(stream_));
            for (size_t d = 0; d < want.size(); ++d) {
                EXPECT_EQ(
                    countDiffs(want[d], download(got[d].data(), want[d].size()), l.dests()[d].name),
                    0);
            }
        }
    }
}

TEST_F(ConvertReferenceGpu, CompareCountsExactlyTheCorruptedBytes) {
    const layout::Layout l = layout::resolveLayout("glm5-aligned");
    planner::Fleet fleet;
    fleet.engines = {planner::EngineSpec{2, 2, 1, {}}};
    const auto peers = planner::fleetPeers(fleet, planner::layoutExperts(l));
    const planner::PeerSpec &peer = peers[1];
    const uint64_t step = 2;
    auto host = referenceLocalTensors(l, peer, SyntheticGenerator(l, kSeed, step));
    std::vector<platform::DeviceBuffer> device;
    std::vector<const std::byte *> pointers;
    for (const auto &t : host) {
        device.push_back(upload(t));
        pointers.push_back(device.back().as<std::byte>());
    }
    CudaReference reference(l, kSeed, 0);
    for (int64_t m : reference.compare(peer, step, pointers, stream_)) EXPECT_EQ(m, 0);

    // The previous version differs almost everywhere.
    const auto stale = reference.compare(peer, step - 1, pointers, stream_);
    int64_t stale_total = 0;
    for (int64_t m : stale) stale_total += m;
    EXPECT_GT(stale_total, 0);

    // Corrupt 3 bytes of one FP8 expert tensor (one in its last expert) and 1 byte of a scale.
    size_t values = l.dests().size();
    size_t scales = l.dests().size();
    for (const layout::Conversion &conv : l.conversions()) {
        if (conv.expert && !conv.scale.empty()) {
            values = l.destIndex(conv.dest);
            scales = l.destIndex(conv.scale);
            break;
        }
    }
    ASSERT_LT(values, host.size());
    for (size_t at : {size_t{0}, host[values].size() / 2, host[values].size() - 1}) {
        host[values][at] ^= std::byte{0x01};
    }
    host[scales][4] ^= std::byte{0x80};
    device[values] = upload(host[values]);
    device[scales] = upload(host[scales]);
    pointers[values] = device[values].as<std::byte>();
    pointers[scales] = device[scales].as<std::byte>();
    const auto counts = reference.compare(peer, step, pointers, stream_);
    for (size_t d = 0; d < counts.size(); ++d) {
        EXPECT_EQ(counts[d], d == values ? 3 : d == scales ? 1 : 0) << l.dests()[d].name;
    }
}

}  // namespace
}  // namespace weightsync::convert
