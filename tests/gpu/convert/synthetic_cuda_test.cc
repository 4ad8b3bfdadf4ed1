// syntheticFillCuda against syntheticFill, bit for bit: every source of the small layouts, whole
// and as offset boxes, into aligned (vector stores) and misaligned (scalar stores) outputs.

#include "convert/cuda/synthetic_cuda.h"
#include "convert/synthetic.h"
#include "gpu/convert/convert_gpu_test_util.h"
#include "layout/registry.h"

namespace weightsync::convert {
namespace {

using testing::countDiffs;
using testing::download;

class ConvertSyntheticGpu : public testing::GpuTest {
  protected:
    void expectSame(const layout::Layout &l, uint32_t index, uint64_t step, int64_t g0,
                    int64_t groups, int64_t r0, int64_t rows, size_t misalign) {
        const layout::SourceTensor &s = l.sources()[index];
        const int64_t cols = layout::canonicalExtent(s.shape, s.expert_dim == 0).c;
        const size_t bytes = static_cast<size_t>(groups * rows * cols) * dtypeSize(s.dtype);
        std::vector<std::byte> want(bytes);
        syntheticFill(l, index, 11, step, g0, groups, r0, rows, want.data());
        platform::DeviceBuffer out(bytes + 64, 0);
        std::byte *at = out.as<std::byte>() + misalign;
        syntheticFillCuda(l, index, 11, step, g0, groups, r0, rows, at, stream_);
        WS_CUDA_OK(cudaStreamSynchronize(stream_));
        EXPECT_EQ(countDiffs(want, download(at, bytes), s.name), 0)
            << "box g" << g0 << "+" << groups << " r" << r0 << "+" << rows << " misalign "
            << misalign;
    }
};

TEST_F(ConvertSyntheticGpu, EverySourceMatchesTheCpuBitForBit) {
    for (const std::string model : {"glm5-tiny", "glm5-aligned"}) {
        const layout::Layout l = layout::resolveLayout(model);
        for (uint32_t i = 0; i < l.sources().size(); ++i) {
            const layout::SourceTensor &s = l.sources()[i];
            const layout::Extent3 e = layout::canonicalExtent(s.shape, s.expert_dim == 0);
            SCOPED_TRACE(model + " " + s.name);
            for (uint64_t step : {1, 2}) expectSame(l, i, step, 0, e.g, 0, e.r, 0);
            // An offset box (global coordinates feed the hash) into a misaligned output.
            const int64_t g0 = e.g > 1 ? 3 : 0;
            const int64_t r0 = e.r > 5 ? 5 : 0;
            expectSame(l, i, 7, g0, e.g - g0, r0, e.r - r0, dtypeSize(s.dtype));
        }
    }
}

TEST_F(ConvertSyntheticGpu, ValuesChangeWithTheStep) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const uint32_t index = 0;
    const layout::SourceTensor &s = l.sources()[index];
    const layout::Extent3 e = layout::canonicalExtent(s.shape, s.expert_dim == 0);
    const size_t bytes = static_cast<size_t>(e.numel()) * dtypeSize(s.dtype);
    platform::DeviceBuffer a(bytes, 0);
    platform::DeviceBuffer b(bytes, 0);
    syntheticFillCuda(l, index, 11, 1, 0, e.g, 0, e.r, a.data(), stream_);
    syntheticFillCuda(l, index, 11, 2, 0, e.g, 0, e.r, b.data(), stream_);
    WS_CUDA_OK(cudaStreamSynchronize(stream_));
    const std::vector<std::byte> first = download(a.data(), bytes);
    const std::vector<std::byte> second = download(b.data(), bytes);
    size_t changed = 0;
    for (size_t i = 0; i < bytes; i += 2)
        changed += first[i] != second[i] || first[i + 1] != second[i + 1];
    EXPECT_GT(changed, bytes / 2 / 2) << "most elements change from one step to the next";
}

TEST_F(ConvertSyntheticGpu, RejectsBoxesOutsideTheTensor) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const layout::SourceTensor &s = l.sources()[0];
    const layout::Extent3 e = layout::canonicalExtent(s.shape, s.expert_dim == 0);
    platform::DeviceBuffer out(1024, 0);
    try {
        syntheticFillCuda(l, 0, 1, 1, 0, e.g, 1, e.r, out.data(), stream_);
        ADD_FAILURE() << "no error";
    } catch (const Error &err) {
        EXPECT_EQ(err.code(), Errc::kInvalidArgument);
    }
}

}  // namespace
}  // namespace weightsync::convert
