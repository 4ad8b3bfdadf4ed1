#pragma once
// The quotient x / s of the quantizer's inner loop, as one multiply and two FMAs with the
// correctly rounded reciprocal r = RN(1 / s) (Markstein's correction step). It is not always the
// correctly rounded fp32 quotient, but for every bf16 x and every scale the quantizer can produce
// (s = max(RN(amax / 448), 1e-12), |x| <= amax, amax any finite bf16) it differs from RN(x / s)
// only where |x / s| < 2^-12, which encodes to a signed e4m3 zero either way. So
// e4m3(quotientViaReciprocal(x, s, r)) == e4m3(RN(x / s)) for all of them; the unit test
// blockQuant.ReciprocalQuotientMatchesDivisionExhaustively checks all 5.3e8 (x, amax) pairs.
// The CUDA kernel uses it (about 3x fewer instructions than IEEE division); the CPU reference
// keeps the plain division. Requires no flush-to-zero (nvcc's default -ftz=false).

#include <cmath>

#if defined(__CUDACC__)
#define WEIGHTSYNC_QUOTIENT_DECL __host__ __device__ __forceinline__
#else
#define WEIGHTSYNC_QUOTIENT_DECL inline
#endif

namespace weightsync::kernels {

WEIGHTSYNC_QUOTIENT_DECL float quotientViaReciprocal(float x, float s, float r) {
#if defined(__CUDA_ARCH__)
    const float q0 = __fmul_rn(x, r);
    const float e = __fmaf_rn(-q0, s, x);  // exact residual x - q0 * s (outside underflow)
    // s > 0, so x / s has the sign of x, zero included: x = -0 gives e = +0 and q0 + e = +0,
    // which must stay -0 (e4m3 0x80), as IEEE division gives.
    return copysignf(__fmaf_rn(e, r, q0), x);
#else
    const float q0 = x * r;
    const float e = std::fma(-q0, s, x);
    return std::copysign(std::fma(e, r, q0), x);
#endif
}

}  // namespace weightsync::kernels

#undef WEIGHTSYNC_QUOTIENT_DECL
