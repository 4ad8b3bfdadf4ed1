#include "convert/cuda/cuda_reference.h"

#include "common/error.h"
#include "convert/cuda/convert_cuda_launch.h"
#include "convert/cuda/synthetic_cuda.h"
#include "kernels/convert/cast.cuh"
#include "kernels/fp8/block_quant.cuh"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"

#include <algorithm>

namespace weightsync::convert {
namespace {

// Copies a [rows][cols] window (byte widths) between two row-major 2-D arrays.
void copyWindow(std::byte *dst, int64_t dst_pitch, const std::byte *src, int64_t src_pitch,
                int64_t width, int64_t rows, cudaStream_t stream) {
    if (rows == 0 || width == 0) return;
    platform::cudaCheck(
        cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_pitch), src, static_cast<size_t>(src_pitch),
                          static_cast<size_t>(width), static_cast<size_t>(rows),
                          cudaMemcpyDeviceToDevice, stream),
        "reference: copying the TP window");
}

void grow(platform::DeviceBuffer &buffer, int64_t bytes, int device, cudaStream_t stream) {
    if (static_cast<int64_t>(buffer.size()) >= bytes) return;
    platform::cudaCheck(cudaStreamSynchronize(stream), "reference: growing scratch");
    buffer = platform::DeviceBuffer();  // free first: the peak is the larger buffer alone
    buffer = platform::DeviceBuffer(static_cast<size_t>(bytes), device);
}

}  // namespace

CudaReference::CudaReference(const layout::Layout &layout, uint64_t seed, int device)
    : layout_(layout), seed_(seed), device_(device) {}

CudaReference::CudaReference(const layout::Layout &layout, std::vector<const void *> sources,
                             int device)
    : layout_(layout), sources_(std::move(sources)), device_(device) {
    check(sources_.size() == layout.sources().size(), Errc::kInvalidArgument,
          "reference: {} source tensors given, layout '{}' has {}", sources_.size(), layout.name(),
          layout.sources().size());
    for (size_t i = 0; i < sources_.size(); ++i) {
        check(sources_[i] != nullptr, Errc::kInvalidArgument, "reference: source '{}' is missing",
              layout.sources()[i].name);
    }
}

void CudaReference::fillSource(uint32_t index, int64_t g, int64_t rows, uint64_t step, void *out,
                               cudaStream_t stream) const {
    if (sources_.empty()) {
        syntheticFillCuda(layout_, index, seed_, step, g, 1, 0, rows, out, stream);
        return;
    }
    const layout::SourceTensor &s = layout_.sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    const auto bytes = static_cast<size_t>(rows * e.c) * dtypeSize(s.dtype);
    const auto *from = static_cast<const std::byte *>(sources_[index]) +
                       static_cast<size_t>(g * e.r * e.c) * dtypeSize(s.dtype);
    platform::cudaCheck(cudaMemcpyAsync(out, from, bytes, cudaMemcpyDeviceToDevice, stream),
                        "reference: reading '{}'", s.name);
}

void CudaReference::reserve(const layout::Conversion &conv, const planner::LocalGeometry &geo,
                            bool local_copy, cudaStream_t stream) {
    const layout::DestTensor &dest = layout_.dest(conv.dest);
    const layout::Extent3 de = layout::canonicalExtent(dest.shape, conv.expert);
    const auto elem = static_cast<int64_t>(dtypeSize(dest.dtype));
    int64_t part = 0;
    for (const std::string &name : conv.sources) {
        const layout::SourceTensor &s = layout_.source(name);
        part = std::max(part, layout::canonicalExtent(s.shape, conv.expert).r * de.c *
                                  static_cast<int64_t>(dtypeSize(s.dtype)));
    }
    const int64_t scale_bytes =
        layout::ceilDiv(de.r, kFp8BlockSize) * layout::ceilDiv(de.c, kFp8BlockSize) * kScaleBytes;
    grow(fused_, de.r * de.c * static_cast<int64_t>(sizeof(float)), device_, stream);
    grow(part_, part, device_, stream);
    grow(converted_, de.r * de.c * elem, device_, stream);
    if (geo.quantized) grow(scales_, scale_bytes, device_, stream);
    if (local_copy) {
        grow(local_,
             geo.rows * geo.cols * elem + geo.blockRows() * geo.blockCols() * kScaleBytes + 256,
             device_, stream);
    }
}

void CudaReference::convertGroup(const layout::Conversion &conv, const planner::LocalGeometry &geo,
                                 const planner::PeerSpec &peer, int64_t li, uint64_t step,
                                 std::byte *values, std::byte *scales, cudaStream_t stream) {
    const layout::DestTensor &dest = layout_.dest(conv.dest);
    const layout::Extent3 de = layout::canonicalExtent(dest.shape, conv.expert);
    const int64_t g = conv.expert ? peer.experts[static_cast<size_t>(li)] : 0;
    // 1. The whole destination of expert g, fused sources concatenated, in fp32.
    int64_t row0 = 0;
    for (const std::string &name : conv.sources) {
        const auto idx = static_cast<uint32_t>(layout_.sourceIndex(name));
        const layout::SourceTensor &s = layout_.sources()[idx];
        const int64_t rows = layout::canonicalExtent(s.shape, conv.expert).r;
        float *to = fused_.as<float>() + row0 * de.c;
        if (s.dtype == DType::kF32) {
            fillSource(idx, g, rows, step, to, stream);
        } else {
            fillSource(idx, g, rows, step, part_.data(), stream);
            platform::cudaCheck(
                kernels::castCopy(kernels::denseConstView(part_.data(), s.dtype, 1, rows, de.c),
                                  kernels::denseView(to, DType::kF32, 1, rows, de.c), stream),
                "reference: widening '{}'", s.name);
        }
        row0 += rows;
    }
    // 2. Convert the whole thing.
    const int64_t brows = layout::ceilDiv(de.r, kFp8BlockSize);
    const int64_t bcols = layout::ceilDiv(de.c, kFp8BlockSize);
    const auto src = kernels::denseConstView(fused_.data(), DType::kF32, 1, de.r, de.c);
    const auto dst = kernels::denseView(converted_.data(), dest.dtype, 1, de.r, de.c);
    if (geo.quantized) {
        platform::cudaCheck(
            kernels::blockQuantizeFp8(
                src, dst, kernels::denseView(scales_.data(), DType::kF32, 1, brows, bcols), stream),
            "reference: quantizing '{}'", conv.dest);
    } else {
        platform::cudaCheck(kernels::castCopy(src, dst, stream), "reference: converting '{}'",
                            conv.dest);
    }
    // 3. The peer's TP window: each part's row window, then the column window.
    const auto elem = static_cast<int64_t>(dtypeSize(dest.dtype));
    int64_t global_row = 0;
    for (size_t p = 0; p < geo.part_rows.size(); ++p) {
        const int64_t lo = geo.part_lo[p];
        const int64_t n = geo.part_hi[p] - lo;
        copyWindow(values + geo.part_local[p] * geo.cols * elem, geo.cols * elem,
                   converted_.as<std::byte>() + ((global_row + lo) * de.c + geo.col_lo) * elem,
                   de.c * elem, geo.cols * elem, n, stream);
        if (geo.quantized) {
            copyWindow(scales + geo.part_local[p] / kFp8BlockSize * geo.blockCols() * kScaleBytes,
                       geo.blockCols() * kScaleBytes,
                       scales_.as<std::byte>() + ((global_row + lo) / kFp8BlockSize * bcols +
                                                  geo.col_lo / kFp8BlockSize) *
                                                     kScaleBytes,
                       bcols * kScaleBytes, geo.blockCols() * kScaleBytes,
                       layout::ceilDiv(n, kFp8BlockSize), stream);
        }
        global_row += geo.part_rows[p];
    }
}

void CudaReference::convert(const layout::Conversion &conv, const planner::PeerSpec &peer,
                            uint64_t step, void *values, void *scales, cudaStream_t stream) {
    platform::DeviceGuard guard(device_);
    const planner::LocalGeometry geo = planner::localGeometry(layout_, conv, peer);
    check(values != nullptr && (!geo.quantized || scales != nullptr), Errc::kInvalidArgument,
          "reference: no output buffer for '{}'", conv.dest);
    reserve(conv, geo, false, stream);
    const auto elem = static_cast<int64_t>(dtypeSize(layout_.dest(conv.dest).dtype));
    const int64_t value_group = geo.rows * geo.cols * elem;
    const int64_t scale_group = geo.blockRows() * geo.blockCols() * kScaleBytes;
    for (int64_t li = 0; li < geo.groups; ++li) {
        convertGroup(conv, geo, peer, li, step, static_cast<std::byte *>(values) + li * value_group,
                     geo.quantized ? static_cast<std::byte *>(scales) + li * scale_group : nullptr,
                     stream);
    }
}

std::vector<int64_t> CudaReference::compare(const planner::PeerSpec &peer, uint64_t step,
                                            std::span<const std::byte *const> tensors,
                                            cudaStream_t stream) {
    platform::DeviceGuard guard(device_);
    const size_t n = layout_.dests().size();
    check(tensors.size() == n, Errc::kInvalidArgument,
          "reference: {} tensors given, the layout has {} destinations", tensors.size(), n);
    const std::vector<planner::LocalTensor> local = planner::localTensors(layout_, peer);
    grow(counters_, static_cast<int64_t>(n * sizeof(unsigned long long)), device_, stream);
    platform::cudaCheck(
        cudaMemsetAsync(counters_.data(), 0, n * sizeof(unsigned long long), stream),
        "reference: clearing counters");
    auto *counters = counters_.as<unsigned long long>();
    const auto count = [&](size_t dest, const std::byte *want, const std::byte *got,
                           int64_t bytes) {
        platform::cudaCheck(detail::launchCountMismatches(want, got, static_cast<size_t>(bytes),
                                                          counters + dest, stream),
                            "reference: comparing '{}'", layout_.dests()[dest].name);
    };
    for (const layout::Conversion &conv : layout_.conversions()) {
        const planner::LocalGeometry geo = planner::localGeometry(layout_, conv, peer);
        const size_t vi = layout_.destIndex(conv.dest);
        const size_t si = conv.scale.empty() ? n : layout_.destIndex(conv.scale);
        const auto elem = static_cast<int64_t>(dtypeSize(layout_.dests()[vi].dtype));
        const int64_t value_group = geo.rows * geo.cols * elem;
        const int64_t scale_group = geo.blockRows() * geo.blockCols() * kScaleBytes;
        check(geo.groups * value_group == local[vi].bytes &&
                  (si == n || geo.groups * scale_group == local[si].bytes),
              Errc::kInternal, "reference: local size of '{}' differs from the geometry",
              conv.dest);
        check(tensors[vi] != nullptr && (si == n || tensors[si] != nullptr), Errc::kInvalidArgument,
              "reference: no device tensor for '{}'", conv.dest);
        reserve(conv, geo, true, stream);
        std::byte *want_values = local_.as<std::byte>();
        std::byte *want_scales = want_values + (value_group + 255) / 256 * 256;
        for (int64_t li = 0; li < geo.groups; ++li) {
            convertGroup(conv, geo, peer, li, step, want_values, want_scales, stream);
            count(vi, want_values, tensors[vi] + li * value_group, value_group);
            if (si != n) count(si, want_scales, tensors[si] + li * scale_group, scale_group);
        }
    }
    std::vector<unsigned long long> host(n);
    platform::cudaCheck(cudaMemcpyAsync(host.data(), counters, n * sizeof(unsigned long long),
                                        cudaMemcpyDeviceToHost, stream),
                        "reference: reading counters");
    platform::cudaCheck(cudaStreamSynchronize(stream), "reference: comparing");
    return {host.begin(), host.end()};
}

std::vector<int64_t> compareLocalTensorsCuda(const layout::Layout &layout,
                                             const planner::PeerSpec &peer, uint64_t seed,
                                             uint64_t step,
                                             std::span<const std::byte *const> tensors, int device,
                                             cudaStream_t stream) {
    CudaReference reference(layout, seed, device);
    return reference.compare(peer, step, tensors, stream);
}

}  // namespace weightsync::convert
