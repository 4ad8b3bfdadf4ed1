#include "planner/plan.h"

namespace weightsync::planner {

int64_t valuesEnd(const ConvOp &op) {
    const int64_t g = op.g1 - op.g0;
    const int64_t r = op.r1 - op.r0;
    const int64_t c = op.c1 - op.c0;
    return op.offset + ((g - 1) * op.group_stride + (r - 1) * op.row_stride + c) *
                           static_cast<int64_t>(dtypeSize(op.dtype));
}

int64_t scalesEnd(const ConvOp &op) {
    if (op.scale_offset < 0) return -1;
    const int64_t g = op.g1 - op.g0;
    const int64_t br = layout::ceilDiv(op.r1 - op.r0, kFp8BlockSize);
    const int64_t bc = layout::ceilDiv(op.c1 - op.c0, kFp8BlockSize);
    return op.scale_offset +
           ((g - 1) * op.scale_group_stride + (br - 1) * op.scale_row_stride + bc) * kScaleBytes;
}

int64_t outputBytes(const ConvOp &op) {
    const int64_t g = op.g1 - op.g0;
    const int64_t r = op.r1 - op.r0;
    const int64_t c = op.c1 - op.c0;
    int64_t bytes = g * r * c * static_cast<int64_t>(dtypeSize(op.dtype));
    if (op.scale_offset >= 0) {
        bytes +=
            g * layout::ceilDiv(r, kFp8BlockSize) * layout::ceilDiv(c, kFp8BlockSize) * kScaleBytes;
    }
    return bytes;
}

}  // namespace weightsync::planner
