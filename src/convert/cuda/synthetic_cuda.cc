#include "convert/cuda/synthetic_cuda.h"

#include "common/error.h"
#include "convert/cuda/convert_cuda_launch.h"
#include "platform/cuda/cuda_check.h"

namespace weightsync::convert {

void syntheticFillCuda(const layout::Layout &layout, uint32_t index, uint64_t seed, uint64_t step,
                       int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *device_out,
                       cudaStream_t stream) {
    check(index < layout.sources().size(), Errc::kInvalidArgument,
          "synthetic source index {} out of range ({} sources)", index, layout.sources().size());
    const layout::SourceTensor &s = layout.sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    check(g0 >= 0 && groups >= 0 && g0 + groups <= e.g && r0 >= 0 && rows >= 0 && r0 + rows <= e.r,
          Errc::kInvalidArgument, "synthetic box outside '{}'", s.name);
    check(s.dtype == DType::kBF16 || s.dtype == DType::kF32, Errc::kInvalidArgument,
          "synthetic source '{}' has dtype {} (bf16 or fp32 only)", s.name, dtypeName(s.dtype));
    if (groups * rows * e.c == 0) return;
    check(device_out != nullptr, Errc::kInvalidArgument, "synthetic fill of '{}' into null",
          s.name);
    detail::SyntheticFillDesc d{};
    d.out = device_out;
    d.key = detail::syntheticMix(seed ^ detail::syntheticMix(index + 1));
    d.step_key = detail::syntheticMix(d.key ^ detail::syntheticMix(step + 0x5151));
    d.g0 = g0;
    d.r0 = r0;
    d.groups = groups;
    d.rows = rows;
    d.cols = e.c;
    d.tensor_rows = e.r;
    d.bf16 = s.dtype == DType::kBF16;
    d.vec = e.c % 8 == 0 && reinterpret_cast<uintptr_t>(device_out) % 16 == 0;
    platform::cudaCheck(detail::launchSyntheticFill(d, stream), "synthetic fill of '{}'", s.name);
}

}  // namespace weightsync::convert
