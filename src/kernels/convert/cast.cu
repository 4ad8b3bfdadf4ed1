// fp32 <-> bf16 conversion kernel: each thread converts 8-element chunks of one column range,
// CTAs in y stride over rows. 16-byte accesses when rows are aligned, scalar otherwise.

#include "kernels/convert/bf16_device.cuh"
#include "kernels/convert/cast_launch.h"

#include <algorithm>
#include <climits>

namespace weightsync::kernels::detail {

namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 8;  // elements per thread
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kTargetCtas = 8192;  // enough to fill any GPU several times over

__device__ __forceinline__ uint32_t pack(float lo, float hi) {
    return static_cast<uint32_t>(toBf16(lo)) | (static_cast<uint32_t>(toBf16(hi)) << 16);
}

__device__ __forceinline__ void convertChunk(const uint16_t *in, float *out) {
    const uint4 v = *reinterpret_cast<const uint4 *>(in);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    float4 *o = reinterpret_cast<float4 *>(out);
    o[0] = make_float4(__uint_as_float(w[0] << 16), __uint_as_float(w[0] & 0xffff0000U),
                       __uint_as_float(w[1] << 16), __uint_as_float(w[1] & 0xffff0000U));
    o[1] = make_float4(__uint_as_float(w[2] << 16), __uint_as_float(w[2] & 0xffff0000U),
                       __uint_as_float(w[3] << 16), __uint_as_float(w[3] & 0xffff0000U));
}

__device__ __forceinline__ void convertChunk(const float *in, uint16_t *out) {
    const float4 a = reinterpret_cast<const float4 *>(in)[0];
    const float4 b = reinterpret_cast<const float4 *>(in)[1];
    *reinterpret_cast<uint4 *>(out) =
        make_uint4(pack(a.x, a.y), pack(a.z, a.w), pack(b.x, b.y), pack(b.z, b.w));
}

__device__ __forceinline__ float convert(uint16_t x, float *) {
    return __uint_as_float(static_cast<uint32_t>(x) << 16);
}
__device__ __forceinline__ uint16_t convert(float x, uint16_t *) {
    return toBf16(x);
}

// grid.x covers the chunks of a row, grid.y strides over the groups * rows rows.
template <typename S, typename D>
__global__ void __launch_bounds__(kThreads) castKernel(CastDesc d) {
    const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kChunk;
    if (c0 >= d.cols) return;
    const int64_t n = min(static_cast<int64_t>(kChunk), d.cols - c0);
    for (int64_t gr = blockIdx.y; gr < d.total_rows; gr += gridDim.y) {
        const int64_t g = gr / d.rows;
        const int64_t r = gr - g * d.rows;
        const S *in = static_cast<const S *>(d.src) + g * d.src_gs + r * d.src_rs + c0;
        D *out = static_cast<D *>(d.dst) + g * d.dst_gs + r * d.dst_rs + c0;
        if (n == kChunk && d.vec) {
            convertChunk(in, out);
        } else {
            for (int64_t e = 0; e < n; ++e) out[e] = convert(in[e], out);
        }
    }
}

}  // namespace

cudaError_t launchCast(const CastDesc &d, bool src_f32, int max_ctas, cudaStream_t stream) {
    const int64_t chunks = (d.cols + kChunk - 1) / kChunk;
    const int64_t grid_x = (chunks + kThreads - 1) / kThreads;
    if (grid_x < 1 || grid_x > INT32_MAX || d.total_rows < 1 || max_ctas < 0) {
        return cudaErrorInvalidValue;
    }
    const int64_t target = max_ctas > 0 ? std::min<int64_t>(kTargetCtas, max_ctas) : kTargetCtas;
    const int64_t grid_y =
        std::min({d.total_rows, std::max<int64_t>(1, target / grid_x), kMaxGridY});
    const dim3 grid(static_cast<unsigned int>(grid_x), static_cast<unsigned int>(grid_y));
    if (src_f32) {
        castKernel<float, uint16_t><<<grid, kThreads, 0, stream>>>(d);
    } else {
        castKernel<uint16_t, float><<<grid, kThreads, 0, stream>>>(d);
    }
    return cudaGetLastError();
}

}  // namespace weightsync::kernels::detail
