#include "kernels/mla/mla_absorb_ref.h"

#include "common/dtype.h"
#include "common/error.h"
#include "kernels/fp8/e4m3.h"

namespace weightsync::kernels {

void mlaAbsorbRef(const uint8_t *weight, const float *scales, const MlaAbsorbShape &s,
                  uint16_t *w_uv, uint16_t *w_uk_t) {
    const int64_t per_head = s.nope + s.v_head;
    check(per_head > 0 && s.rows % per_head == 0, Errc::kInvalidArgument,
          "kv_b_proj has {} rows, not a multiple of nope + v = {}", s.rows, per_head);
    const int64_t bcols = (s.cols + kFp8BlockSize - 1) / kFp8BlockSize;
    for (int64_t r = 0; r < s.rows; ++r) {
        const int64_t h = r / per_head;
        const int64_t j = r % per_head;
        for (int64_t l = 0; l < s.cols; ++l) {
            const float scale = scales[(r / kFp8BlockSize) * bcols + l / kFp8BlockSize];
            const uint16_t v = f32ToBf16Bits(e4m3ToF32(weight[r * s.cols + l]) * scale);
            if (j < s.nope) {
                w_uk_t[(h * s.nope + j) * s.cols + l] = v;
            } else {
                w_uv[(h * s.cols + l) * s.v_head + (j - s.nope)] = v;
            }
        }
    }
}

}  // namespace weightsync::kernels
