#pragma once
// Strided 3-D views over raw host or device memory: the currency of every kernel in this folder.
// A view is [groups][rows][cols] with cols contiguous; strides are in ELEMENTS of the view's dtype.
// A 2-D tensor is groups = 1; expert tensors [E, r, c] are groups = E.

#include "common/dtype.h"

#include <cstdint>
#include <string_view>

namespace weightsync::kernels {

struct View3 {
    void *data = nullptr;
    DType dtype = DType::kBF16;
    int64_t groups = 0, rows = 0, cols = 0;
    int64_t group_stride = 0, row_stride = 0;
};

struct ConstView3 {
    const void *data = nullptr;
    DType dtype = DType::kBF16;
    int64_t groups = 0, rows = 0, cols = 0;
    int64_t group_stride = 0, row_stride = 0;
};

inline ConstView3 asConst(const View3 &v) {
    return {v.data, v.dtype, v.groups, v.rows, v.cols, v.group_stride, v.row_stride};
}

/// A dense row-major [groups][rows][cols] view.
inline View3 denseView(void *data, DType dtype, int64_t groups, int64_t rows, int64_t cols) {
    return {data, dtype, groups, rows, cols, rows * cols, cols};
}
inline ConstView3 denseConstView(const void *data, DType dtype, int64_t groups, int64_t rows,
                                 int64_t cols) {
    return {data, dtype, groups, rows, cols, rows * cols, cols};
}

inline int64_t numel(const ConstView3 &v) {
    return v.groups * v.rows * v.cols;
}

/// Number of 128-wide blocks covering n elements.
constexpr int64_t blocksOf(int64_t n, int64_t block) {
    return (n + block - 1) / block;
}

/// Throws Errc::kInvalidArgument unless the view is well formed: non-negative sizes, strides that
/// keep rows and groups from overlapping, and non-null data when it has elements. `what` names the
/// view in the message.
void checkView(const ConstView3 &v, std::string_view what);

/// Checks the three views of a block quantization (see fp8/block_quant_ref.h). Throws
/// kInvalidArgument.
void checkQuantViews(const ConstView3 &src, const View3 &dst, const View3 &scales);

/// Checks the two views of a cast/copy (see convert/cast_ref.h). Throws kInvalidArgument.
void checkCastViews(const ConstView3 &src, const View3 &dst);

}  // namespace weightsync::kernels
