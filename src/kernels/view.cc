#include "kernels/view.h"

#include "common/error.h"
#include "kernels/fp8/e4m3.h"

namespace weightsync::kernels {

namespace {

std::string describe(const ConstView3 &v) {
    return fmt::format("{}[{},{},{}] strides ({},{})", dtypeName(v.dtype), v.groups, v.rows, v.cols,
                       v.group_stride, v.row_stride);
}

bool sameShape(const ConstView3 &a, const ConstView3 &b) {
    return a.groups == b.groups && a.rows == b.rows && a.cols == b.cols;
}

}  // namespace

void checkView(const ConstView3 &v, std::string_view what) {
    check(v.groups >= 0 && v.rows >= 0 && v.cols >= 0, Errc::kInvalidArgument,
          "{} view {} has a negative size", what, describe(v));
    check(v.group_stride >= 0 && v.row_stride >= 0, Errc::kInvalidArgument,
          "{} view {} has a negative stride", what, describe(v));
    if (numel(v) == 0) return;
    check(v.data != nullptr, Errc::kInvalidArgument, "{} view {} has null data", what, describe(v));
    check(v.rows == 1 || v.row_stride >= v.cols, Errc::kInvalidArgument,
          "{} view {}: rows overlap (row_stride < cols)", what, describe(v));
    const int64_t group_extent = (v.rows - 1) * v.row_stride + v.cols;
    check(v.groups == 1 || v.group_stride >= group_extent, Errc::kInvalidArgument,
          "{} view {}: groups overlap (group_stride < {})", what, describe(v), group_extent);
}

void checkQuantViews(const ConstView3 &src, const View3 &dst, const View3 &scales) {
    const ConstView3 d = asConst(dst);
    const ConstView3 s = asConst(scales);
    checkView(src, "source");
    checkView(d, "fp8 destination");
    checkView(s, "scale");
    check(src.dtype == DType::kBF16 || src.dtype == DType::kF32, Errc::kInvalidArgument,
          "block quantization source must be bf16 or fp32, got {}", describe(src));
    check(d.dtype == DType::kF8E4M3, Errc::kInvalidArgument,
          "block quantization destination must be fp8_e4m3, got {}", describe(d));
    check(s.dtype == DType::kF32, Errc::kInvalidArgument,
          "block quantization scales must be fp32, got {}", describe(s));
    check(sameShape(src, d), Errc::kInvalidArgument,
          "block quantization destination {} does not match source {}", describe(d), describe(src));
    const int64_t rb = blocksOf(src.rows, kFp8BlockSize);
    const int64_t cb = blocksOf(src.cols, kFp8BlockSize);
    check(s.groups == src.groups && s.rows == rb && s.cols == cb, Errc::kInvalidArgument,
          "block quantization scales {} must be [{},{},{}] for source {}", describe(s), src.groups,
          rb, cb, describe(src));
}

void checkCastViews(const ConstView3 &src, const View3 &dst) {
    const ConstView3 d = asConst(dst);
    checkView(src, "source");
    checkView(d, "destination");
    const auto ok = [](DType t) { return t == DType::kBF16 || t == DType::kF32; };
    check(ok(src.dtype) && ok(d.dtype), Errc::kInvalidArgument,
          "cast supports bf16/fp32 to bf16/fp32 only, got {} -> {}", describe(src), describe(d));
    check(sameShape(src, d), Errc::kInvalidArgument, "cast destination {} does not match source {}",
          describe(d), describe(src));
}

}  // namespace weightsync::kernels
