#pragma once
// MLA weight absorption (DeepSeek / GLM-5 attention, as vLLM's MLA backend derives it after
// loading): from the FP8 kv_b_proj [heads * (nope + v), kv_lora] and its 128x128 scale grid,
// dequantize to bf16 (e4m3 * scale_inv in fp32, rounded to nearest even), view as
// [kv_lora, heads, nope + v] and produce
//   W_UV   = w_uv.transpose(0, 1)     [heads, kv_lora, v]
//   W_UK_T = w_uk.permute(1, 2, 0)    [heads, nope, kv_lora]
// The CPU reference; mla_absorb.cuh is the CUDA kernel that produces the same bits.

#include <cstdint>

namespace weightsync::kernels {

struct MlaAbsorbShape {
    int64_t rows = 0;  // heads * (nope + v)
    int64_t cols = 0;  // kv_lora
    int64_t nope = 0;
    int64_t v_head = 0;
};

/// weight: fp8 bytes [rows][cols]; scales: fp32 [ceil(rows/128)][ceil(cols/128)]; outputs bf16
/// bits. Throws Errc::kInvalidArgument when rows is not a multiple of nope + v.
void mlaAbsorbRef(const uint8_t *weight, const float *scales, const MlaAbsorbShape &shape,
                  uint16_t *w_uv, uint16_t *w_uk_t);

}  // namespace weightsync::kernels
