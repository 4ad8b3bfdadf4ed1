// The CUDA MLA-absorb kernel against its CPU reference, bit for bit: random FP8 bytes (every
// finite code, signed zeros included) and random scales, partial scale blocks, several head
// shapes (GLM-5's nope 192 / v 256 among them).

#include "gpu/kernels/gpu_test_util.h"
#include "kernels/mla/mla_absorb.cuh"

#include <random>

namespace weightsync::kernels::testing {
namespace {

class KernelsMlaAbsorbGpu : public GpuTest {};

void checkShape(cudaStream_t stream, MlaAbsorbShape s, uint32_t seed) {
    SCOPED_TRACE(::testing::Message()
                 << s.rows << "x" << s.cols << " nope " << s.nope << " v " << s.v_head);
    std::mt19937 rng(seed);
    std::vector<uint8_t> w(static_cast<size_t>(s.rows * s.cols));
    for (uint8_t &b : w) {
        do {
            b = static_cast<uint8_t>(rng() & 0xff);
        } while ((b & 0x7f) == 0x7f);  // NaN codes never come out of the quantizer
    }
    const int64_t brows = (s.rows + 127) / 128;
    const int64_t bcols = (s.cols + 127) / 128;
    std::vector<float> scales(static_cast<size_t>(brows * bcols));
    std::uniform_real_distribution<float> dist(-20.0f, 4.0f);
    for (float &x : scales) x = std::ldexp(1.0f + dist(rng) / 64.0f, static_cast<int>(dist(rng)));
    const int64_t heads = s.rows / (s.nope + s.v_head);
    std::vector<uint16_t> uv(static_cast<size_t>(heads * s.cols * s.v_head));
    std::vector<uint16_t> uk(static_cast<size_t>(heads * s.nope * s.cols));
    mlaAbsorbRef(w.data(), scales.data(), s, uv.data(), uk.data());

    uint8_t *dw = nullptr;
    float *ds = nullptr;
    uint16_t *duv = nullptr;
    uint16_t *duk = nullptr;
    WS_CUDA_OK(cudaMalloc(&dw, w.size()));
    WS_CUDA_OK(cudaMalloc(&ds, scales.size() * 4));
    WS_CUDA_OK(cudaMalloc(&duv, uv.size() * 2));
    WS_CUDA_OK(cudaMalloc(&duk, uk.size() * 2));
    WS_CUDA_OK(cudaMemcpy(dw, w.data(), w.size(), cudaMemcpyHostToDevice));
    WS_CUDA_OK(cudaMemcpy(ds, scales.data(), scales.size() * 4, cudaMemcpyHostToDevice));
    WS_CUDA_OK(cudaMemset(duv, 0xA5, uv.size() * 2));  // poison: every element must be written
    WS_CUDA_OK(cudaMemset(duk, 0xA5, uk.size() * 2));
    WS_CUDA_OK(mlaAbsorb(dw, ds, s, duv, duk, stream));
    WS_CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<uint16_t> got_uv(uv.size());
    std::vector<uint16_t> got_uk(uk.size());
    WS_CUDA_OK(cudaMemcpy(got_uv.data(), duv, uv.size() * 2, cudaMemcpyDeviceToHost));
    WS_CUDA_OK(cudaMemcpy(got_uk.data(), duk, uk.size() * 2, cudaMemcpyDeviceToHost));
    cudaFree(dw);
    cudaFree(ds);
    cudaFree(duv);
    cudaFree(duk);
    EXPECT_TRUE(got_uv == uv) << "W_UV differs";
    EXPECT_TRUE(got_uk == uk) << "W_UK_T differs";
}

TEST_F(KernelsMlaAbsorbGpu, MatchesTheCpuReference) {
    checkShape(stream_, {int64_t{4} * (32 + 32), 64, 32, 32}, 1);   // glm5-tiny
    checkShape(stream_, {int64_t{4} * (64 + 64), 448, 64, 64}, 2);  // glm5-aligned, partial blocks
    checkShape(stream_, {int64_t{8} * (192 + 256), 512, 192, 256}, 3);  // GLM-5 heads, 8 of them
}

TEST_F(KernelsMlaAbsorbGpu, RejectsRowsThatAreNotWholeHeads) {
    EXPECT_EQ(mlaAbsorb(nullptr, nullptr, {100, 64, 32, 32}, nullptr, nullptr, stream_),
              cudaErrorInvalidValue);
}

}  // namespace
}  // namespace weightsync::kernels::testing
