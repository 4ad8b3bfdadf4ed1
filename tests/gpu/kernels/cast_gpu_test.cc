// The CUDA cast/copy against castRef, bit for bit, padding included.

#include "gpu/kernels/gpu_test_util.h"
#include "kernels/convert/cast.cuh"
#include "kernels/convert/cast_ref.h"

#include <array>
#include <bit>
#include <cstring>
#include <random>

namespace weightsync::kernels {
namespace {

using testing::DeviceMirror;
using testing::HostTensor;

class KernelsCastGpu : public testing::GpuTest {
  protected:
    template <typename S, typename D>
    void expectSameAsReference(const HostTensor<S> &src, HostTensor<D> dst, int max_ctas = 0) {
        DeviceMirror<S> d_src(src);
        DeviceMirror<D> d_dst(dst);
        ASSERT_TRUE(d_src.ok() && d_dst.ok());
        WS_CUDA_OK(castCopy(d_src.cview(src.cview()), d_dst.view(dst.view()), stream_, max_ctas));
        WS_CUDA_OK(cudaStreamSynchronize(stream_));
        castRef(src.cview(), dst.view());
        const std::vector<D> got = d_dst.download();
        ASSERT_EQ(got.size(), dst.data.size());
        int64_t bad = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            if (std::bit_cast<std::array<std::byte, sizeof(D)>>(got[i]) !=
                    std::bit_cast<std::array<std::byte, sizeof(D)>>(dst.data[i]) &&
                bad++ < 5) {
                ADD_FAILURE() << "element " << i << " differs";
            }
        }
        EXPECT_EQ(bad, 0);
    }
};

HostTensor<uint16_t> randomBf16Bits(int64_t g, int64_t r, int64_t c, int64_t row_pad,
                                    int64_t group_pad) {
    HostTensor<uint16_t> t(DType::kBF16, g, r, c, row_pad, group_pad);
    std::mt19937 rng(static_cast<uint32_t>(g * 131 + r * 7 + c));
    for (uint16_t &v : t.data) v = static_cast<uint16_t>(rng());
    return t;
}

HostTensor<float> randomF32Bits(int64_t g, int64_t r, int64_t c, int64_t row_pad,
                                int64_t group_pad) {
    HostTensor<float> t(DType::kF32, g, r, c, row_pad, group_pad);
    std::mt19937 rng(static_cast<uint32_t>(g * 131 + r * 7 + c));
    for (float &v : t.data) v = std::bit_cast<float>(static_cast<uint32_t>(rng()));  // NaNs too
    return t;
}

TEST_F(KernelsCastGpu, Bf16ToFp32) {
    expectSameAsReference(randomBf16Bits(1, 512, 1024, 0, 0),
                          HostTensor<float>(DType::kF32, 1, 512, 1024, 0, 0, -1.0f));
    expectSameAsReference(randomBf16Bits(3, 77, 131, 5, 3),  // unaligned rows: scalar path
                          HostTensor<float>(DType::kF32, 3, 77, 131, 2, 1, -1.0f));
    expectSameAsReference(randomBf16Bits(1, 1, 6144, 0, 0),
                          HostTensor<float>(DType::kF32, 1, 1, 6144, 0, 0, -1.0f));
}

TEST_F(KernelsCastGpu, Fp32ToBf16) {
    expectSameAsReference(randomF32Bits(2, 300, 1000, 8, 16),
                          HostTensor<uint16_t>(DType::kBF16, 2, 300, 1000, 8, 0, 0x1234));
    expectSameAsReference(randomF32Bits(1, 70000, 3, 0, 0),  // more rows than grid.y holds
                          HostTensor<uint16_t>(DType::kBF16, 1, 70000, 3, 1, 0, 0x1234));
}

TEST_F(KernelsCastGpu, CappedGridsConvertEveryRow) {
    for (int ctas : {1, 3, 132}) {
        SCOPED_TRACE("max_ctas " + std::to_string(ctas));
        expectSameAsReference(randomBf16Bits(3, 77, 131, 5, 3),
                              HostTensor<float>(DType::kF32, 3, 77, 131, 2, 1, -1.0f), ctas);
        expectSameAsReference(randomF32Bits(2, 300, 1000, 8, 16),
                              HostTensor<uint16_t>(DType::kBF16, 2, 300, 1000, 8, 0, 0x1234), ctas);
    }
}

TEST_F(KernelsCastGpu, SameTypeCopies) {
    // dense -> one memcpy; padded rows -> one 2-D copy; groups with gaps -> one 2-D copy per group
    expectSameAsReference(randomBf16Bits(2, 64, 96, 0, 0),
                          HostTensor<uint16_t>(DType::kBF16, 2, 64, 96, 0, 0, 0x1234));
    expectSameAsReference(randomBf16Bits(2, 64, 96, 7, 0),
                          HostTensor<uint16_t>(DType::kBF16, 2, 64, 96, 3, 0, 0x1234));
    expectSameAsReference(randomF32Bits(3, 40, 50, 2, 9),
                          HostTensor<float>(DType::kF32, 3, 40, 50, 1, 5, -1.0f));
    expectSameAsReference(randomF32Bits(4, 1, 50, 0, 9),  // rows == 1: groups are the rows
                          HostTensor<float>(DType::kF32, 4, 1, 50, 0, 2, -1.0f));
}

}  // namespace
}  // namespace weightsync::kernels
