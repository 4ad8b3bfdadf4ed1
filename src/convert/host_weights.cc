#include "convert/host_weights.h"

#include <cstring>

namespace weightsync::convert {

namespace {
layout::Extent3 extentOf(const layout::SourceTensor &s) {
    return layout::canonicalExtent(s.shape, s.expert_dim == 0);
}
}  // namespace

HostWeights::HostWeights(const layout::Layout &layout) : layout_(layout) {
    for (const layout::SourceTensor &s : layout.sources()) {
        tensors_.emplace_back(static_cast<size_t>(numel(s.shape)) * dtypeSize(s.dtype));
    }
}

void HostWeights::load(const SourceGenerator &generator) {
    for (uint32_t i = 0; i < tensors_.size(); ++i) {
        const layout::Extent3 e = extentOf(layout_.sources()[i]);
        generator.fill(i, 0, e.g, 0, e.r, tensors_[i].data());
    }
}

void HostWeights::fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
                       void *out) const {
    const layout::SourceTensor &s = layout_.sources()[index];
    const layout::Extent3 e = extentOf(s);
    const size_t row_bytes = static_cast<size_t>(e.c) * dtypeSize(s.dtype);
    auto *to = static_cast<std::byte *>(out);
    for (int64_t g = g0; g < g0 + groups; ++g) {
        const std::byte *from = tensors_[index].data() + (g * e.r + r0) * row_bytes;
        std::memcpy(to, from, static_cast<size_t>(rows) * row_bytes);
        to += static_cast<size_t>(rows) * row_bytes;
    }
}

SourceShard RankView::shard(uint32_t index) const {
    const layout::SourceTensor &s = weights_.layout().sources()[index];
    const layout::Extent3 e = extentOf(s);
    const ShardBox box = trainerShardBox(weights_.layout(), index, mesh_, rank_);
    const std::byte *base = weights_.data(index) + (box.g0 * e.r + box.r0) * e.c *
                                                       static_cast<int64_t>(dtypeSize(s.dtype));
    // Rows of one group are contiguous but groups are e.r rows apart: only whole-row boxes
    // (experts, or one group) can be described with a single row stride.
    return {base, s.dtype, box.g0, box.groups, box.r0, box.rows, e.c, e.c};
}

SourceShard RankView::full(uint32_t index) const {
    const layout::SourceTensor &s = weights_.layout().sources()[index];
    const layout::Extent3 e = extentOf(s);
    return {weights_.data(index), s.dtype, 0, e.g, 0, e.r, e.c, e.c};
}

}  // namespace weightsync::convert
