// Host side of castCopy: view checks, copy-engine paths for same-dtype copies, kernel otherwise.

#include "kernels/convert/cast.cuh"

#include "common/error.h"
#include "kernels/convert/cast_launch.h"

#include <cstdint>

namespace weightsync::kernels {

namespace {

bool rowsAligned(const void *p, int64_t es, int64_t gs, int64_t rs, int64_t groups, int64_t rows) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && (groups == 1 || (gs * es) % 16 == 0) &&
           (rows == 1 || (rs * es) % 16 == 0);
}

// Pitch (elements) of the view seen as one 2-D array of groups * rows rows, or 0 when it is not
// one.
int64_t mergedPitch(const ConstView3 &v) {
    if (v.rows == 1) return v.groups == 1 ? v.cols : v.group_stride;
    return v.groups == 1 || v.group_stride == v.rows * v.row_stride ? v.row_stride : 0;
}

cudaError_t copySameType(const ConstView3 &src, const View3 &dst, cudaStream_t stream) {
    const auto es = static_cast<int64_t>(dtypeSize(src.dtype));
    const int64_t src_pitch = mergedPitch(src);
    const int64_t dst_pitch = mergedPitch(asConst(dst));
    const size_t width = static_cast<size_t>(src.cols * es);
    if (src_pitch == src.cols && dst_pitch == src.cols) {
        return cudaMemcpyAsync(dst.data, src.data, static_cast<size_t>(numel(src) * es),
                               cudaMemcpyDeviceToDevice, stream);
    }
    if (src_pitch != 0 && dst_pitch != 0) {
        return cudaMemcpy2DAsync(dst.data, static_cast<size_t>(dst_pitch * es), src.data,
                                 static_cast<size_t>(src_pitch * es), width,
                                 static_cast<size_t>(src.groups * src.rows),
                                 cudaMemcpyDeviceToDevice, stream);
    }
    // One 2-D copy per group (here rows > 1, so row_stride is the pitch).
    for (int64_t g = 0; g < src.groups; ++g) {
        const auto *s = static_cast<const char *>(src.data) + g * src.group_stride * es;
        auto *d = static_cast<char *>(dst.data) + g * dst.group_stride * es;
        const cudaError_t err =
            cudaMemcpy2DAsync(d, static_cast<size_t>(dst.row_stride * es), s,
                              static_cast<size_t>(src.row_stride * es), width,
                              static_cast<size_t>(src.rows), cudaMemcpyDeviceToDevice, stream);
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

}  // namespace

cudaError_t castCopy(const ConstView3 &src, const View3 &dst, cudaStream_t stream, int max_ctas) {
    checkCastViews(src, dst);
    check(max_ctas >= 0, Errc::kInvalidArgument, "castCopy: max_ctas {} < 0", max_ctas);
    if (numel(src) == 0) return cudaSuccess;
    if (src.dtype == dst.dtype) return copySameType(src, dst, stream);
    detail::CastDesc d{};
    d.src = src.data;
    d.dst = dst.data;
    d.src_gs = src.group_stride;
    d.src_rs = src.row_stride;
    d.dst_gs = dst.group_stride;
    d.dst_rs = dst.row_stride;
    d.rows = src.rows;
    d.cols = src.cols;
    d.total_rows = src.groups * src.rows;
    d.vec = rowsAligned(src.data, static_cast<int64_t>(dtypeSize(src.dtype)), src.group_stride,
                        src.row_stride, src.groups, src.rows) &&
            rowsAligned(dst.data, static_cast<int64_t>(dtypeSize(dst.dtype)), dst.group_stride,
                        dst.row_stride, src.groups, src.rows);
    return detail::launchCast(d, src.dtype == DType::kF32, max_ctas, stream);
}

}  // namespace weightsync::kernels
