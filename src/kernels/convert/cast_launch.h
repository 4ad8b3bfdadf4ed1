#pragma once
// Internal seam between cast.cc (checks, copy paths; host C++) and cast.cu (the conversion kernel).

#include <cuda_runtime_api.h>

#include <cstdint>

namespace weightsync::kernels::detail {

struct CastDesc {
    const void *src;
    void *dst;
    int64_t src_gs, src_rs, dst_gs, dst_rs;  // strides in elements
    int64_t rows, cols, total_rows;          // total_rows = groups * rows
    bool vec;                                // every row of both sides starts 16-byte aligned
};

/// Launches the bf16 -> fp32 (src_f32 false) or fp32 -> bf16 (src_f32 true) conversion on about
/// max_ctas CTAs at most (0: as many as fill the GPU several times over).
cudaError_t launchCast(const CastDesc &desc, bool src_f32, int max_ctas, cudaStream_t stream);

}  // namespace weightsync::kernels::detail
