#include "convert/host_weights.h"

namespace weightsync::convert {

HostWeights::HostWeights(const layout::Layout &layout) : layout_(layout) {
    for (const layout::SourceTensor &s : layout.sources()) {
        tensors_.emplace_back(static_cast<size_t>(numel(s.shape)) * dtypeSize(s.dtype));
    }
}

void HostWeights::load(const SourceGenerator &generator) {
    for (uint32_t i = 0; i < tensors_.size(); ++i) {
        const layout::Extent3 e = layout::sourceExtent(layout_.sources()[i]);
        generator.fill(i, 0, e.g, 0, e.r, tensors_[i].data());
    }
}

void HostWeights::fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
                       void *out) const {
    copyFromWholeTensor(layout_, index, tensors_[index].data(), g0, groups, r0, rows, out);
}

SourceShard RankView::shard(uint32_t index) const {
    const layout::SourceTensor &s = weights_.layout().sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    const ShardBox box = trainerShardBox(weights_.layout(), index, mesh_, rank_);
    const std::byte *base = weights_.data(index) + (box.g0 * e.r + box.r0) * e.c *
                                                       static_cast<int64_t>(dtypeSize(s.dtype));
    // Rows of one group are contiguous but groups are e.r rows apart: only whole-row boxes
    // (experts, or one group) can be described with a single row stride.
    return {base, s.dtype, box.g0, box.groups, box.r0, box.rows, e.c, e.c};
}

SourceShard RankView::full(uint32_t index) const {
    const layout::SourceTensor &s = weights_.layout().sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    return {weights_.data(index), s.dtype, 0, e.g, 0, e.r, e.c, e.c};
}

}  // namespace weightsync::convert
