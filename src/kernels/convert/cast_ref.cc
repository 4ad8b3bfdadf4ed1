#include "kernels/convert/cast_ref.h"

#include <cstring>

namespace weightsync::kernels {

namespace {

void copyRow(const uint16_t *in, int64_t n, uint16_t *out) {
    std::memcpy(out, in, n * 2);
}
void copyRow(const float *in, int64_t n, float *out) {
    std::memcpy(out, in, n * 4);
}

void copyRow(const uint16_t *in, int64_t n, float *out) {
    for (int64_t c = 0; c < n; ++c) out[c] = bf16BitsToF32(in[c]);
}

void copyRow(const float *in, int64_t n, uint16_t *out) {
    for (int64_t c = 0; c < n; ++c) out[c] = f32ToBf16Bits(in[c]);
}

template <typename S, typename D>
void castTyped(const ConstView3 &src, const View3 &dst) {
    const auto *s = static_cast<const S *>(src.data);
    auto *d = static_cast<D *>(dst.data);
    for (int64_t g = 0; g < src.groups; ++g) {
        for (int64_t r = 0; r < src.rows; ++r) {
            copyRow(s + g * src.group_stride + r * src.row_stride, src.cols,
                    d + g * dst.group_stride + r * dst.row_stride);
        }
    }
}

}  // namespace

void castRef(const ConstView3 &src, const View3 &dst) {
    checkCastViews(src, dst);
    if (numel(src) == 0) return;
    const bool src_bf16 = src.dtype == DType::kBF16;
    const bool dst_bf16 = dst.dtype == DType::kBF16;
    if (src_bf16 && dst_bf16) castTyped<uint16_t, uint16_t>(src, dst);
    if (src_bf16 && !dst_bf16) castTyped<uint16_t, float>(src, dst);
    if (!src_bf16 && dst_bf16) castTyped<float, uint16_t>(src, dst);
    if (!src_bf16 && !dst_bf16) castTyped<float, float>(src, dst);
}

}  // namespace weightsync::kernels
