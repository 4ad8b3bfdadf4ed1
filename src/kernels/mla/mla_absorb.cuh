#pragma once
// CUDA twin of mlaAbsorbRef (mla_absorb_ref.h): same bits. Device pointers; enqueued on `stream`.

#include "kernels/mla/mla_absorb_ref.h"

#include <cuda_runtime.h>

namespace weightsync::kernels {

cudaError_t mlaAbsorb(const uint8_t *weight, const float *scales, const MlaAbsorbShape &shape,
                      uint16_t *w_uv, uint16_t *w_uk_t, cudaStream_t stream);

}  // namespace weightsync::kernels
