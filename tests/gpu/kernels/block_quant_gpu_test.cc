// The CUDA block quantizer against the CPU reference, bit for bit (bytes, scales, and padding).

#include "gpu/kernels/gpu_test_util.h"
#include "kernels/fp8/block_quant.cuh"
#include "kernels/fp8/block_quant_ref.h"

#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <random>
#include <string>

namespace weightsync::kernels {
namespace {

using testing::DeviceMirror;
using testing::HostTensor;

class KernelsBlockQuantGpu : public testing::GpuTest {
  protected:
    // Quantizes src on the GPU and with the reference into identically initialised outputs and
    // compares the whole backing stores, padding included.
    template <typename T>
    void expectSameAsReference(const HostTensor<T> &src, int64_t dst_row_pad = 0,
                               int64_t dst_group_pad = 0, int64_t scale_pad = 0) {
        HostTensor<uint8_t> q(DType::kF8E4M3, src.g, src.r, src.c, dst_row_pad, dst_group_pad,
                              0xaa);
        auto s = testing::scalesFor(src.g, src.r, src.c, scale_pad);
        DeviceMirror<T> d_src(src);
        DeviceMirror<uint8_t> d_q(q);
        DeviceMirror<float> d_s(s);
        ASSERT_TRUE(d_src.ok() && d_q.ok() && d_s.ok());
        WS_CUDA_OK(blockQuantizeFp8(d_src.cview(src.cview()), d_q.view(q.view()),
                                    d_s.view(s.view()), stream_));
        WS_CUDA_OK(cudaStreamSynchronize(stream_));
        blockQuantizeFp8Ref(src.cview(), q.view(), s.view());
        expectEqual(q.data, d_q.download(), "bytes");
        expectEqual(s.data, d_s.download(), "scales");
    }

    template <typename T>
    static void expectEqual(const std::vector<T> &want, const std::vector<T> &got,
                            const char *what) {
        ASSERT_EQ(want.size(), got.size());
        int64_t bad = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            if (std::bit_cast<std::array<std::byte, sizeof(T)>>(want[i]) !=
                    std::bit_cast<std::array<std::byte, sizeof(T)>>(got[i]) &&
                bad++ < 5) {
                ADD_FAILURE() << what << " differ at " << i << ": want " << +want[i] << " got "
                              << +got[i];
            }
        }
        EXPECT_EQ(bad, 0) << what;
    }
};

TEST_F(KernelsBlockQuantGpu, RandomBf16) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{256, 384}, {1024, 1024}, {4096, 6144}}) {
        HostTensor<uint16_t> x(DType::kBF16, 1, rows, cols);
        testing::fillRandomBf16(x, static_cast<uint32_t>(rows + cols));
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        expectSameAsReference(x);
    }
}

TEST_F(KernelsBlockQuantGpu, PartialEdgeBlocks) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{130, 200},
                              {1, 1},
                              {127, 129},
                              {129, 127},
                              {300, 8},
                              {5, 1000},
                              {1000, 3}}) {
        HostTensor<uint16_t> x(DType::kBF16, 1, rows, cols);
        testing::fillRandomBf16(x, static_cast<uint32_t>(rows * 7 + cols));
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        expectSameAsReference(x);
    }
}

TEST_F(KernelsBlockQuantGpu, SpecialBlocks) {
    // 2 x 4 blocks: zeros, negative zeros, tiny, huge, unit scale with e4m3 midpoints, subnormal
    // bf16, a single nonzero element, and small integers times 1.0078125.
    HostTensor<uint16_t> x(DType::kBF16, 1, 256, 512);
    std::mt19937 rng(3);
    const float big = bf16BitsToF32(0x7f7f);
    const float mids[] = {1.0625f, 1.1875f, 232.0f, 248.0f, 3 * 0x1p-10f, 0x1p-10f, -0.5f};
    for (int64_t r = 0; r < 256; ++r) {
        for (int64_t c = 0; c < 512; ++c) {
            const int block = static_cast<int>((r / 128) * 4 + c / 128);
            const float sign = (rng() & 1) != 0 ? 1.0f : -1.0f;
            float v = 0;
            switch (block) {
                case 0: v = 0.0f; break;
                case 1: v = -0.0f; break;
                case 2: v = sign * 1e-30f; break;
                case 3: v = sign * std::ldexp(big, -static_cast<int>(rng() % 40)); break;
                case 4: v = r == 128 && c == 0 ? 448.0f : sign * mids[rng() % 7]; break;
                case 5:
                    v = sign * std::bit_cast<float>(static_cast<uint32_t>(rng() % 0x7fU) << 16);
                    break;
                case 6: v = r == 200 && c == 300 ? -7.0f : 0.0f; break;
                default: v = sign * 1.0078125f * static_cast<float>(rng() % 64); break;
            }
            x.at(0, r, c) = f32ToBf16Bits(v);
        }
    }
    expectSameAsReference(x);
}

TEST_F(KernelsBlockQuantGpu, GroupedAndStrided) {
    HostTensor<uint16_t> x(DType::kBF16, 3, 260, 390, /*row_pad=*/8, /*group_pad=*/24);
    testing::fillRandomBf16(x, 17);
    expectSameAsReference(x, /*dst_row_pad=*/8, /*dst_group_pad=*/16, /*scale_pad=*/3);
    // Rows that are not 16-byte aligned (odd row stride) and an odd destination stride: the
    // scalar path.
    HostTensor<uint16_t> y(DType::kBF16, 2, 256, 256, /*row_pad=*/3, /*group_pad=*/1);
    testing::fillRandomBf16(y, 18);
    expectSameAsReference(y, /*dst_row_pad=*/5, /*dst_group_pad=*/1);
}

TEST_F(KernelsBlockQuantGpu, UnalignedBasePointer) {
    HostTensor<uint16_t> x(DType::kBF16, 1, 257, 300, 0, 0);
    testing::fillRandomBf16(x, 19);
    HostTensor<uint8_t> q(DType::kF8E4M3, 1, 257, 301, 0, 0, 0xaa);
    auto s = testing::scalesFor(1, 256, 299);  // the views below are 256 x 299
    DeviceMirror<uint16_t> d_x(x);
    DeviceMirror<uint8_t> d_q(q);
    DeviceMirror<float> d_s(s);
    // Source starts one element in (2-byte aligned), destination one byte in.
    ConstView3 src{x.data.data() + 1, DType::kBF16, 1, 256, 299, 0, x.rs};
    View3 dst{q.data.data() + 1, DType::kF8E4M3, 1, 256, 299, 0, q.rs};
    WS_CUDA_OK(blockQuantizeFp8(d_x.cview(src), d_q.view(dst), d_s.view(s.view()), stream_));
    WS_CUDA_OK(cudaStreamSynchronize(stream_));
    blockQuantizeFp8Ref(src, dst, s.view());
    expectEqual(q.data, d_q.download(), "bytes");
    expectEqual(s.data, d_s.download(), "scales");
}

TEST_F(KernelsBlockQuantGpu, Fp32SourceRoundsToBf16First) {
    HostTensor<float> x(DType::kF32, 2, 300, 520, /*row_pad=*/4);
    std::mt19937 rng(21);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float &v : x.data) v = normal(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 30) - 15);
    x.at(0, 0, 0) = 1.00390625f;  // bf16 midpoints
    x.at(0, 0, 1) = 1.01171875f;
    x.at(1, 5, 5) = 3.0e38f;
    expectSameAsReference(x);
    HostTensor<float> y(DType::kF32, 1, 129, 131, /*row_pad=*/1);  // unaligned rows
    for (float &v : y.data) v = normal(rng);
    expectSameAsReference(y);
}

TEST_F(KernelsBlockQuantGpu, BatchMatchesSingleCalls) {
    // 70 jobs (more than one launch holds), bf16 and fp32 mixed, various shapes, empty ones too.
    constexpr int kJobs = 70;
    std::vector<std::unique_ptr<HostTensor<uint16_t>>> x16;
    std::vector<std::unique_ptr<HostTensor<float>>> x32;
    std::vector<std::unique_ptr<HostTensor<uint8_t>>> q;
    std::vector<std::unique_ptr<HostTensor<float>>> s;
    std::vector<std::unique_ptr<DeviceMirror<uint16_t>>> d16;
    std::vector<std::unique_ptr<DeviceMirror<float>>> d32;
    std::vector<std::unique_ptr<DeviceMirror<uint8_t>>> dq;
    std::vector<std::unique_ptr<DeviceMirror<float>>> ds;
    std::vector<QuantJob> jobs;
    std::mt19937 rng(23);
    for (int i = 0; i < kJobs; ++i) {
        const int64_t g = 1 + static_cast<int64_t>(rng() % 3);
        const int64_t r = i == 7 ? 0 : 1 + static_cast<int64_t>(rng() % 300);
        const int64_t c = 1 + static_cast<int64_t>(rng() % 300);
        q.push_back(std::make_unique<HostTensor<uint8_t>>(DType::kF8E4M3, g, r, c, 0, 0, 0xaa));
        s.push_back(std::make_unique<HostTensor<float>>(testing::scalesFor(g, r, c)));
        dq.push_back(std::make_unique<DeviceMirror<uint8_t>>(*q.back()));
        ds.push_back(std::make_unique<DeviceMirror<float>>(*s.back()));
        ConstView3 src_dev;
        if (i % 3 == 2) {
            x32.push_back(std::make_unique<HostTensor<float>>(DType::kF32, g, r, c, i % 4));
            std::normal_distribution<float> normal(0.0f, static_cast<float>(i + 1));
            for (float &v : x32.back()->data) v = normal(rng);
            d32.push_back(std::make_unique<DeviceMirror<float>>(*x32.back()));
            src_dev = d32.back()->cview(x32.back()->cview());
            blockQuantizeFp8Ref(x32.back()->cview(), q.back()->view(), s.back()->view());
        } else {
            x16.push_back(std::make_unique<HostTensor<uint16_t>>(DType::kBF16, g, r, c, i % 9));
            testing::fillRandomBf16(*x16.back(), static_cast<uint32_t>(i));
            d16.push_back(std::make_unique<DeviceMirror<uint16_t>>(*x16.back()));
            src_dev = d16.back()->cview(x16.back()->cview());
            blockQuantizeFp8Ref(x16.back()->cview(), q.back()->view(), s.back()->view());
        }
        jobs.push_back(
            {src_dev, dq.back()->view(q.back()->view()), ds.back()->view(s.back()->view())});
    }
    // Uncapped (a CTA per block), then grids capped below the block count: CTAs stride over
    // blocks and must produce the same bytes. Outputs are poisoned between runs.
    for (int ctas : {0, 1, 5, 132}) {
        SCOPED_TRACE("max_ctas " + std::to_string(ctas));
        for (int i = 0; i < kJobs; ++i) {
            if (i == 7) continue;  // the empty job writes nothing: its buffers keep their fill
            dq[i]->poison(0xaa);
            ds[i]->poison(0xaa);
        }
        WS_CUDA_OK(blockQuantizeFp8Batch(jobs.data(), kJobs, stream_, nullptr, ctas));
        WS_CUDA_OK(cudaStreamSynchronize(stream_));
        for (int i = 0; i < kJobs; ++i) {
            SCOPED_TRACE("job " + std::to_string(i));
            expectEqual(q[i]->data, dq[i]->download(), "bytes");
            expectEqual(s[i]->data, ds[i]->download(), "scales");
        }
    }
}

TEST_F(KernelsBlockQuantGpu, NonFiniteBlocksGetNanScaleAndAreCounted) {
    HostTensor<uint16_t> x(DType::kBF16, 1, 256, 384);
    testing::fillRandomBf16(x, 29);
    HostTensor<uint16_t> clean = x;
    x.at(0, 3, 4) = 0x7fc0;      // NaN in block (0, 0)
    x.at(0, 200, 300) = 0xff80;  // -Inf in block (1, 2)
    clean.at(0, 3, 4) = 0;
    clean.at(0, 200, 300) = 0;
    HostTensor<uint8_t> q(DType::kF8E4M3, 1, 256, 384);
    auto s = testing::scalesFor(1, 256, 384);
    DeviceMirror<uint16_t> d_x(x);
    DeviceMirror<uint8_t> d_q(q);
    DeviceMirror<float> d_s(s);
    void *counter_mem = nullptr;
    WS_CUDA_OK(cudaMalloc(&counter_mem, sizeof(unsigned int)));
    auto *counter = static_cast<unsigned int *>(counter_mem);
    WS_CUDA_OK(cudaMemset(counter, 0, sizeof(unsigned int)));
    WS_CUDA_OK(blockQuantizeFp8(d_x.cview(x.cview()), d_q.view(q.view()), d_s.view(s.view()),
                                stream_, counter));
    WS_CUDA_OK(cudaStreamSynchronize(stream_));
    unsigned int bad = 0;
    WS_CUDA_OK(cudaMemcpy(&bad, counter, sizeof bad, cudaMemcpyDeviceToHost));
    EXPECT_EQ(bad, 2U);
    // An fp32 source with CUDA's canonical NaN (0x7fffffff) is caught too.
    HostTensor<float> y(DType::kF32, 1, 128, 256, 0, 0, 1.0f);
    y.at(0, 100, 200) = std::bit_cast<float>(0x7fffffffU);
    auto ys = testing::scalesFor(1, 128, 256);
    HostTensor<uint8_t> yq(DType::kF8E4M3, 1, 128, 256);
    DeviceMirror<float> d_y(y);
    DeviceMirror<uint8_t> d_yq(yq);
    DeviceMirror<float> d_ys(ys);
    WS_CUDA_OK(cudaMemset(counter, 0, sizeof(unsigned int)));
    WS_CUDA_OK(blockQuantizeFp8(d_y.cview(y.cview()), d_yq.view(yq.view()), d_ys.view(ys.view()),
                                stream_, counter));
    WS_CUDA_OK(cudaStreamSynchronize(stream_));
    WS_CUDA_OK(cudaMemcpy(&bad, counter, sizeof bad, cudaMemcpyDeviceToHost));
    EXPECT_EQ(bad, 1U);
    EXPECT_FALSE(std::isnan(d_ys.download()[0]));
    EXPECT_TRUE(std::isnan(d_ys.download()[1]));
    cudaFree(counter_mem);
    blockQuantizeFp8Ref(clean.cview(), q.view(), s.view());  // the other blocks must match this
    const std::vector<float> got_s = d_s.download();
    const std::vector<uint8_t> got_q = d_q.download();
    for (int64_t b = 0; b < 6; ++b) {
        const bool nonfinite = b == 0 || b == 5;
        EXPECT_EQ(std::isnan(got_s[b]), nonfinite) << b;
        if (!nonfinite) {
            EXPECT_EQ(got_s[b], s.data[b]) << b;
        }
    }
    for (int64_t r = 128; r < 256; ++r) {  // block (1, 0) is clean
        for (int64_t c = 0; c < 128; ++c) ASSERT_EQ(got_q[r * 384 + c], q.at(0, r, c));
    }
}

}  // namespace
}  // namespace weightsync::kernels
