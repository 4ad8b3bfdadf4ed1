#pragma once
// CPU reference of the FP8 128x128 block quantizer: the ground truth of every test and the path of
// CPU end-to-end runs. The CUDA kernel (block_quant.cuh) produces the same bytes.

#include "kernels/fp8/e4m3.h"
#include "kernels/view.h"

namespace weightsync::kernels {

/// Quantizes src [G][R][C] (bf16, or fp32 that is first rounded to bf16 as the trainer's forward
/// pass sees it: quantizing fp32 masters gives other scales than the bf16 weights the trainer
/// computes with) into dst (fp8_e4m3, [G][R][C]) and scales (fp32,
/// [G][ceil(R/128)][ceil(C/128)]). Per 128x128 block (edge blocks: only the valid elements):
///   amax = max |x|;  s = max(amax / 448, 1e-12);  q = e4m3(clamp(x / s, -448, 448))
/// with IEEE fp32 division and round-to-nearest-even, saturating; s is stored as the block's
/// scale_inv (dequantize: x ~= e4m3ToF32(q) * s).
/// Throws Errc::kInvalidArgument on bad views, or when an element is NaN/Inf (or an fp32 element
/// overflows bf16), naming group/row/col of the first such element in row-major order; dst and
/// scales may then be partly written.
void blockQuantizeFp8Ref(const ConstView3 &src, const View3 &dst, const View3 &scales);

}  // namespace weightsync::kernels
