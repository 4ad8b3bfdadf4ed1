#include "convert/cuda/cuda_synthetic_weights.h"

#include "common/error.h"
#include "convert/cuda/synthetic_cuda.h"
#include "platform/cuda/device.h"

#include <algorithm>

namespace weightsync::convert {
namespace {

constexpr int64_t kAlign = 256;

int64_t align(int64_t n) {
    return (n + kAlign - 1) / kAlign * kAlign;
}

int64_t boxBytes(const layout::Layout &layout, uint32_t index, const ShardBox &box) {
    const layout::SourceTensor &s = layout.sources()[index];
    const int64_t cols = layout::sourceExtent(s).c;
    return box.groups * box.rows * cols * static_cast<int64_t>(dtypeSize(s.dtype));
}

}  // namespace

CudaSyntheticWeights::CudaSyntheticWeights(const layout::Layout &layout,
                                           const planner::TrainerMesh &mesh, int rank,
                                           const std::vector<uint32_t> &full_sources, uint64_t seed,
                                           int device)
    : layout_(layout), seed_(seed) {
    const size_t n = layout.sources().size();
    shards_.resize(n);
    fulls_.resize(n);
    int64_t total = 0;
    for (uint32_t i = 0; i < n; ++i) {
        Held &h = shards_[i];
        h.box = trainerShardBox(layout, i, mesh, rank);
        const int64_t bytes = boxBytes(layout, i, h.box);
        h.offset = total;
        total += align(std::max<int64_t>(bytes, 1));  // an empty shard still has an address
        bytes_ += bytes;
    }
    for (uint32_t i : full_sources) {
        check(i < n, Errc::kInvalidArgument, "gathered source index {} out of range", i);
        const layout::SourceTensor &s = layout.sources()[i];
        const layout::Extent3 e = layout::sourceExtent(s);
        Held &h = fulls_[i];
        h.box = {0, e.g, 0, e.r};
        const int64_t bytes = boxBytes(layout, i, h.box);
        h.offset = total;
        total += align(std::max<int64_t>(bytes, 1));
        bytes_ += bytes;
    }
    buffer_ = platform::DeviceBuffer(static_cast<size_t>(std::max<int64_t>(total, 1)), device);
}

void CudaSyntheticWeights::generate(uint64_t step, cudaStream_t stream) {
    platform::DeviceGuard guard(buffer_.device());
    for (uint32_t i = 0; i < shards_.size(); ++i) {
        for (const Held *h : {&shards_[i], &fulls_[i]}) {
            if (h->offset < 0 || h->box.rows == 0 || h->box.groups == 0) continue;
            syntheticFillCuda(layout_, i, seed_, step, h->box.g0, h->box.groups, h->box.r0,
                              h->box.rows, buffer_.as<std::byte>() + h->offset, stream);
        }
    }
}

SourceShard CudaSyntheticWeights::view(uint32_t index, const Held &held) const {
    const layout::SourceTensor &s = layout_.sources()[index];
    const int64_t cols = layout::sourceExtent(s).c;
    return {buffer_.as<std::byte>() + held.offset,
            s.dtype,
            held.box.g0,
            held.box.groups,
            held.box.r0,
            held.box.rows,
            cols,
            cols};
}

SourceShard CudaSyntheticWeights::shard(uint32_t index) const {
    check(index < shards_.size(), Errc::kInvalidArgument, "source index {} out of range", index);
    return view(index, shards_[index]);
}

SourceShard CudaSyntheticWeights::full(uint32_t index) const {
    check(index < fulls_.size() && fulls_[index].offset >= 0, Errc::kNotFound,
          "source '{}' is not gathered on this rank",
          index < fulls_.size() ? layout_.sources()[index].name : std::string("?"));
    return view(index, fulls_[index]);
}

}  // namespace weightsync::convert
