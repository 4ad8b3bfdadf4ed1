// CUDA FP8 block quantizer. One 256-thread CTA per 128x128 block, one pass over memory:
// every thread loads 8 chunks of 8 elements (16-byte loads; a block is 32 KiB of bf16 held in
// registers), the block amax is a packed-bf16 integer max, a warp redux and an 8-entry smem
// reduction, then each thread divides, converts with the hardware e4m3x2 conversion and stores
// 8-byte chunks (a warp stores 256 contiguous bytes per instruction).

#include "common/dtype.h"
#include "kernels/fp8/block_quant_launch.h"
#include "kernels/fp8/e4m3.h"
#include "kernels/fp8/quotient.h"

#include <cuda_fp8.h>

#include <algorithm>
#include <climits>

namespace weightsync::kernels::detail {

namespace {

constexpr int kThreads = 256;
constexpr int kB = static_cast<int>(kFp8BlockSize);
constexpr int kChunk = 8;                               // elements per 16-byte bf16 load
constexpr int kChunksPerRow = kB / kChunk;              // 16 threads per block row
constexpr int kRowsPerPass = kThreads / kChunksPerRow;  // 16 rows per pass
constexpr int kPasses = kB / kRowsPerPass;              // 8 passes

using JobDesc = QuantJobDesc;

template <int kCap>
struct JobBatch {
    JobDesc jobs[kCap];
    int count;
    int64_t total_blocks;
};

__device__ __forceinline__ uint4 ldStream16(const void *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// fp32 bits -> bf16-rounded fp32 bits (RNE on the magnitude; same as the CPU reference). NaN/Inf
// and bf16 overflow keep an all-ones exponent; the min() stops full-payload NaNs (0x7fffffff)
// from carrying into the sign bit.
__device__ __forceinline__ uint32_t roundBitsToBf16(uint32_t u) {
    const uint32_t a = u & 0x7fffffffU;
    return (u & 0x80000000U) | (min(a + 0x7fffU + ((a >> 16) & 1U), 0x7fff0000U) & 0xffff0000U);
}

__device__ __forceinline__ uint32_t packBf16(uint32_t lo, uint32_t hi) {
    return (roundBitsToBf16(hi) & 0xffff0000U) | (roundBitsToBf16(lo) >> 16);
}

// 8 source elements -> 4 words of packed bf16 (element 2i in the low half of word i).
__device__ __forceinline__ uint4 loadChunk(const uint16_t *p) {
    return ldStream16(p);
}

__device__ __forceinline__ uint4 loadChunk(const float *p) {
    const uint4 a = ldStream16(p);
    const uint4 b = ldStream16(p + 4);
    return make_uint4(packBf16(a.x, a.y), packBf16(a.z, a.w), packBf16(b.x, b.y),
                      packBf16(b.z, b.w));
}

__device__ __forceinline__ uint32_t elementBits(const uint16_t *p) {
    return *p;
}
__device__ __forceinline__ uint32_t elementBits(const float *p) {
    return roundBitsToBf16(__float_as_uint(*p)) >> 16;
}

// Edge or unaligned chunk: n valid elements (0..8), missing ones read as 0.
template <typename SrcT>
__device__ __forceinline__ uint4 loadChunkChecked(const SrcT *p, int n, bool vec) {
    if (n == kChunk && vec) return loadChunk(p);
    uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int e = 0; e < kChunk; ++e) {
        if (e < n) w[e / 2] |= elementBits(p + e) << (16 * (e & 1));
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ uint32_t quantPair(uint32_t w, float s, float r) {
    const float lo = __uint_as_float(w << 16);
    const float hi = __uint_as_float(w & 0xffff0000U);
    const float2 q = make_float2(quotientViaReciprocal(lo, s, r), quotientViaReciprocal(hi, s, r));
    return __nv_cvt_float2_to_fp8x2(q, __NV_SATFINITE, __NV_E4M3);
}

__device__ __forceinline__ uint2 quantChunk(uint4 v, float s, float r) {
    return make_uint2(quantPair(v.x, s, r) | (quantPair(v.y, s, r) << 16),
                      quantPair(v.z, s, r) | (quantPair(v.w, s, r) << 16));
}

__device__ __forceinline__ void storeChunkChecked(uint8_t *p, uint2 q, int n, bool vec) {
    if (n == kChunk && vec) {
        *reinterpret_cast<uint2 *>(p) = q;
        return;
    }
#pragma unroll
    for (int e = 0; e < kChunk; ++e) {
        const uint32_t word = e < 4 ? q.x : q.y;
        if (e < n) p[e] = static_cast<uint8_t>(word >> (8 * (e & 3)));
    }
}

template <typename SrcT, int kCap>
__device__ __forceinline__ void quantBlock(const JobBatch<kCap> &batch, int64_t block,
                                           uint32_t *warp_max, unsigned int *nonfinite) {
    int lo = 0;
    int hi = batch.count - 1;
    while (lo < hi) {  // last job whose first block <= block (uniform across the CTA)
        const int mid = (lo + hi + 1) / 2;
        if (batch.jobs[mid].first_block <= block) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    const JobDesc &job = batch.jobs[lo];
    const int64_t local = block - job.first_block;
    const int cb = static_cast<int>(local % job.col_blocks);
    const int64_t rest = local / job.col_blocks;
    const int rb = static_cast<int>(rest % job.row_blocks);
    const int64_t g = rest / job.row_blocks;

    const int tid = static_cast<int>(threadIdx.x);
    const int row = rb * kB + tid / kChunksPerRow;  // this thread's row in pass 0
    const int col = cb * kB + (tid % kChunksPerRow) * kChunk;
    const SrcT *src = static_cast<const SrcT *>(job.src) + g * job.src_gs + row * job.src_rs + col;
    uint8_t *dst = job.dst + g * job.dst_gs + row * job.dst_rs + col;
    const bool full = rb < job.rows / kB && cb < job.cols / kB;
    const int n_valid = min(max(job.cols - col, 0), kChunk);

    uint4 v[kPasses];
    if (full && (job.vec & kQuantVecSrc) != 0) {
#pragma unroll
        for (int p = 0; p < kPasses; ++p) v[p] = loadChunk(src + p * kRowsPerPass * job.src_rs);
    } else {
#pragma unroll
        for (int p = 0; p < kPasses; ++p) {
            const bool row_ok = row + p * kRowsPerPass < job.rows;
            v[p] = row_ok ? loadChunkChecked(src + p * kRowsPerPass * job.src_rs, n_valid,
                                             (job.vec & kQuantVecSrc) != 0)
                          : make_uint4(0, 0, 0, 0);
        }
    }

    // amax as an integer max over |bf16| bit patterns: NaN/Inf sort above every finite value.
    uint32_t m = 0;
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
        m = __vmaxu2(m, v[p].x & 0x7fff7fffU);
        m = __vmaxu2(m, v[p].y & 0x7fff7fffU);
        m = __vmaxu2(m, v[p].z & 0x7fff7fffU);
        m = __vmaxu2(m, v[p].w & 0x7fff7fffU);
    }
    m = __reduce_max_sync(0xffffffffU, max(m & 0xffffU, m >> 16));
    if ((tid & 31) == 0) warp_max[tid / 32] = m;
    __syncthreads();
    uint32_t amax = warp_max[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; ++w) amax = max(amax, warp_max[w]);

    const bool bad = amax >= 0x7f80U;
    float s = fmaxf(__fdiv_rn(__uint_as_float(amax << 16), kFp8Max), kFp8ScaleFloor);
    if (bad) s = __uint_as_float(0x7fc00000U);
    const float r = __frcp_rn(s);
    if (tid == 0) {
        job.scales[g * job.sc_gs + rb * job.sc_rs + cb] = s;
        if (bad && nonfinite != nullptr) atomicAdd(nonfinite, 1U);
    }

    if (full && (job.vec & kQuantVecDst) != 0) {
#pragma unroll
        for (int p = 0; p < kPasses; ++p) {
            *reinterpret_cast<uint2 *>(dst + p * kRowsPerPass * job.dst_rs) =
                quantChunk(v[p], s, r);
        }
    } else {
#pragma unroll
        for (int p = 0; p < kPasses; ++p) {
            if (row + p * kRowsPerPass < job.rows) {
                storeChunkChecked(dst + p * kRowsPerPass * job.dst_rs, quantChunk(v[p], s, r),
                                  n_valid, (job.vec & kQuantVecDst) != 0);
            }
        }
    }
}

// One CTA per block when the grid covers them all; with a capped grid each CTA strides on.
template <typename SrcT, int kCap>
__global__ void __launch_bounds__(kThreads)
    quantKernel(const __grid_constant__ JobBatch<kCap> batch, unsigned int *nonfinite) {
    __shared__ uint32_t warp_max[kThreads / 32];
    for (int64_t block = blockIdx.x; block < batch.total_blocks; block += gridDim.x) {
        quantBlock<SrcT, kCap>(batch, block, warp_max, nonfinite);
        if (block + gridDim.x < batch.total_blocks) __syncthreads();  // warp_max is reused
    }
}

template <typename SrcT, int kCap>
cudaError_t launch(const JobDesc *descs, int count, int64_t total_blocks, int max_ctas,
                   cudaStream_t stream, unsigned int *nonfinite) {
    JobBatch<kCap> batch{};
    for (int i = 0; i < count; ++i) batch.jobs[i] = descs[i];
    batch.count = count;
    batch.total_blocks = total_blocks;
    const int64_t grid = max_ctas > 0 ? std::min<int64_t>(total_blocks, max_ctas) : total_blocks;
    quantKernel<SrcT, kCap>
        <<<static_cast<unsigned int>(grid), kThreads, 0, stream>>>(batch, nonfinite);
    return cudaGetLastError();
}

// Descriptors travel as kernel parameters: the smallest batch type that holds them keeps the
// launch (and its parameter upload) small.
template <typename SrcT>
cudaError_t launchSized(const JobDesc *descs, int count, int64_t total_blocks, int max_ctas,
                        cudaStream_t stream, unsigned int *nonfinite) {
    if (count == 1) return launch<SrcT, 1>(descs, count, total_blocks, max_ctas, stream, nonfinite);
    if (count <= 8) return launch<SrcT, 8>(descs, count, total_blocks, max_ctas, stream, nonfinite);
    return launch<SrcT, kQuantBatchCap>(descs, count, total_blocks, max_ctas, stream, nonfinite);
}

}  // namespace

cudaError_t launchBlockQuant(const QuantJobDesc *descs, int count, int64_t total_blocks,
                             bool src_f32, int max_ctas, cudaStream_t stream,
                             unsigned int *nonfinite) {
    if (count < 1 || count > kQuantBatchCap || total_blocks < 1 || total_blocks > INT32_MAX ||
        max_ctas < 0) {
        return cudaErrorInvalidValue;
    }
    return src_f32 ? launchSized<float>(descs, count, total_blocks, max_ctas, stream, nonfinite)
                   : launchSized<uint16_t>(descs, count, total_blocks, max_ctas, stream, nonfinite);
}

}  // namespace weightsync::kernels::detail
