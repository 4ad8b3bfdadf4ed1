#pragma once
// CPU reference of the cast/copy conversion used for tensors that stay bf16 or fp32.

#include "kernels/view.h"

namespace weightsync::kernels {

/// Copies or converts src [G][R][C] into dst [G][R][C]: bf16->bf16 and fp32->fp32 copy the bits,
/// bf16->fp32 widens exactly, fp32->bf16 rounds to nearest even (weightsync::f32ToBf16Bits: NaN
/// stays a quiet NaN, infinities and values that overflow become infinite). Any other dtype pair,
/// or differing shapes, throws Errc::kInvalidArgument. src and dst must not overlap.
void castRef(const ConstView3 &src, const View3 &dst);

}  // namespace weightsync::kernels
