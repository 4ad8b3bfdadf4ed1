#include "convert/reference.h"

#include "common/error.h"
#include "kernels/convert/cast_ref.h"
#include "kernels/fp8/block_quant_ref.h"
#include "planner/geometry.h"

#include <cstring>

namespace weightsync::convert {

namespace {

// Copies a [groups][rows][cols] region out of a dense [groups][src_rows][src_cols] tensor.
void sliceCopy(const std::byte *src, int64_t src_rows, int64_t src_cols, int64_t groups, int64_t r0,
               int64_t rows, int64_t c0, int64_t cols, size_t elem, std::byte *dst,
               int64_t dst_rows, int64_t dst_r0) {
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t r = 0; r < rows; ++r) {
            const std::byte *from = src + ((g * src_rows + r0 + r) * src_cols + c0) * elem;
            std::byte *to = dst + ((g * dst_rows + dst_r0 + r) * cols) * elem;
            std::memcpy(to, from, static_cast<size_t>(cols) * elem);
        }
    }
}

}  // namespace

void referenceConvert(const layout::Layout &layout, const layout::Conversion &conv,
                      const planner::PeerSpec &peer, const SourceGenerator &sources,
                      std::vector<std::byte> &out_values, std::vector<std::byte> &out_scales) {
    const planner::LocalGeometry geo = planner::localGeometry(layout, conv, peer);
    const layout::DestTensor &dest = layout.dest(conv.dest);
    const layout::Extent3 de = layout::canonicalExtent(dest.shape, conv.expert);
    const int64_t groups = geo.groups;
    // 1. The whole destination for the peer's experts, fused sources concatenated, in fp32.
    std::vector<float> fused(static_cast<size_t>(groups * de.r * de.c));
    std::vector<std::byte> part;
    int64_t row0 = 0;
    for (const std::string &name : conv.sources) {
        const uint32_t idx = static_cast<uint32_t>(layout.sourceIndex(name));
        const layout::SourceTensor &s = layout.sources()[idx];
        const int64_t rows = layout::canonicalExtent(s.shape, conv.expert).r;
        part.resize(static_cast<size_t>(rows * de.c) * dtypeSize(s.dtype));
        for (int64_t li = 0; li < groups; ++li) {
            const int64_t g = conv.expert ? peer.experts[static_cast<size_t>(li)] : 0;
            sources.fill(idx, g, 1, 0, rows, part.data());
            float *to = fused.data() + (li * de.r + row0) * de.c;
            kernels::castRef(kernels::denseConstView(part.data(), s.dtype, 1, rows, de.c),
                             kernels::denseView(to, DType::kF32, 1, rows, de.c));
        }
        row0 += rows;
    }
    // 2. Convert the whole thing.
    const size_t elem = dtypeSize(dest.dtype);
    std::vector<std::byte> converted(static_cast<size_t>(groups * de.r * de.c) * elem);
    const int64_t brows = layout::ceilDiv(de.r, kFp8BlockSize);
    const int64_t bcols = layout::ceilDiv(de.c, kFp8BlockSize);
    std::vector<std::byte> scales;
    const auto src = kernels::denseConstView(fused.data(), DType::kF32, groups, de.r, de.c);
    const auto dst = kernels::denseView(converted.data(), dest.dtype, groups, de.r, de.c);
    if (geo.quantized) {
        scales.resize(static_cast<size_t>(groups * brows * bcols * kScaleBytes));
        kernels::blockQuantizeFp8Ref(
            src, dst, kernels::denseView(scales.data(), DType::kF32, groups, brows, bcols));
    } else {
        kernels::castRef(src, dst);
    }
    // 3. The peer's TP slice: each part's row window, then the column window.
    out_values.assign(static_cast<size_t>(groups * geo.rows * geo.cols) * elem, std::byte{0});
    out_scales.clear();
    if (geo.quantized) {
        out_scales.assign(
            static_cast<size_t>(groups * geo.blockRows() * geo.blockCols() * kScaleBytes),
            std::byte{0});
    }
    int64_t global_row = 0;
    for (size_t p = 0; p < geo.part_rows.size(); ++p) {
        const int64_t lo = geo.part_lo[p];
        const int64_t n = geo.part_hi[p] - lo;
        sliceCopy(converted.data(), de.r, de.c, groups, global_row + lo, n, geo.col_lo, geo.cols,
                  elem, out_values.data(), geo.rows, geo.part_local[p]);
        if (geo.quantized) {
            sliceCopy(scales.data(), brows, bcols, groups, (global_row + lo) / kFp8BlockSize,
                      layout::ceilDiv(n, kFp8BlockSize), geo.col_lo / kFp8BlockSize,
                      geo.blockCols(), static_cast<size_t>(kScaleBytes), out_scales.data(),
                      geo.blockRows(), geo.part_local[p] / kFp8BlockSize);
        }
        global_row += geo.part_rows[p];
    }
}

std::vector<std::vector<std::byte>> referenceLocalTensors(const layout::Layout &layout,
                                                          const planner::PeerSpec &peer,
                                                          const SourceGenerator &sources) {
    std::vector<std::vector<std::byte>> out(layout.dests().size());
    for (const layout::Conversion &conv : layout.conversions()) {
        std::vector<std::byte> values;
        std::vector<std::byte> scales;
        referenceConvert(layout, conv, peer, sources, values, scales);
        out[layout.destIndex(conv.dest)] = std::move(values);
        if (!conv.scale.empty()) out[layout.destIndex(conv.scale)] = std::move(scales);
    }
    return out;
}

}  // namespace weightsync::convert
