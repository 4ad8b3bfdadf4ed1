#pragma once
// Internal seam between block_quant.cc (checks, descriptors, batching; host C++) and
// block_quant.cu (the kernel). nvcc cannot compile fmt's consteval format strings, so the .cu side
// sees no weightsync::Error.

#include <cuda_runtime_api.h>

#include <cstdint>

namespace weightsync::kernels::detail {

struct QuantJobDesc {
    const void *src;
    uint8_t *dst;
    float *scales;
    int64_t src_gs, src_rs, dst_gs, dst_rs, sc_gs, sc_rs;  // strides in elements
    int64_t first_block;                                   // the job's first CTA in the launch
    int32_t rows, cols, row_blocks, col_blocks;
    int32_t vec;  // kQuantVecSrc | kQuantVecDst
};

constexpr int32_t kQuantVecSrc = 1;  // every source row starts 16-byte aligned
constexpr int32_t kQuantVecDst = 2;  // every destination row starts 8-byte aligned
constexpr int kQuantBatchCap = 64;   // descriptors per launch

/// One launch over count (1..kQuantBatchCap) descriptors of one source dtype, sorted by
/// first_block, covering total_blocks (<= INT32_MAX) 128x128 blocks, on at most max_ctas CTAs
/// (0: one per block).
cudaError_t launchBlockQuant(const QuantJobDesc *descs, int count, int64_t total_blocks,
                             bool src_f32, int max_ctas, cudaStream_t stream,
                             unsigned int *nonfinite);

}  // namespace weightsync::kernels::detail
