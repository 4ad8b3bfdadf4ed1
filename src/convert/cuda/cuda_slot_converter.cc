#include "convert/cuda/cuda_slot_converter.h"

#include "common/error.h"
#include "convert/slot_converter.h"
#include "kernels/convert/cast.cuh"
#include "kernels/fp8/block_quant.cuh"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"

#include <string>
#include <vector>

namespace weightsync::convert {
namespace {

struct Prepared {
    kernels::ConstView3 in;
    kernels::View3 out;
    kernels::View3 scales;
    bool quantize = false;  // else a cast
};

// The views of one op, checked like convertOpsCpu checks them (and the scale grid as well).
Prepared prepare(const layout::Layout &layout, const planner::ConvOp &op,
                 const SourceProvider &sources, std::byte *arena, int64_t arena_bytes) {
    const std::string &name = layout.sources()[op.source].name;
    const OpSource src = opSource(layout, op, sources);
    const int64_t g = op.g1 - op.g0;
    const int64_t r = op.r1 - op.r0;
    const int64_t c = op.c1 - op.c0;
    Prepared p{};
    p.in = {src.data, src.dtype, g, r, c, src.group_stride, src.row_stride};
    check(op.offset >= 0 && planner::valuesEnd(op) <= arena_bytes, Errc::kInternal,
          "conversion of '{}' writes past the arena", name);
    p.out = {arena + op.offset, op.dtype, g, r, c, op.group_stride, op.row_stride};
    try {
        if (op.scale_offset >= 0) {
            const int64_t br = layout::ceilDiv(r, kFp8BlockSize);
            const int64_t bc = layout::ceilDiv(c, kFp8BlockSize);
            check(planner::scalesEnd(op) <= arena_bytes, Errc::kInternal,
                  "the scales of '{}' are written past the arena", name);
            p.scales = {arena + op.scale_offset, DType::kF32,        g, br, bc,
                        op.scale_group_stride,   op.scale_row_stride};
            kernels::checkQuantViews(p.in, p.out, p.scales);
            p.quantize = true;
        } else {
            kernels::checkCastViews(p.in, p.out);
        }
    } catch (const Error &e) {
        throw Error(e.code(), "converting '" + name + "': " + e.what());
    }
    return p;
}

}  // namespace

CudaSlotConverter::CudaSlotConverter(const layout::Layout &layout, int device, int max_ctas)
    : layout_(layout), max_ctas_(max_ctas), nonfinite_(sizeof(unsigned int), device) {
    check(max_ctas >= 0, Errc::kInvalidArgument, "CudaSlotConverter: max_ctas {} < 0", max_ctas);
    nonfinite_.fill(0);
}

void CudaSlotConverter::enqueue(std::span<const planner::ConvOp> ops, const SourceProvider &sources,
                                std::byte *arena, int64_t arena_bytes, cudaStream_t stream) {
    platform::DeviceGuard guard(nonfinite_.device());
    std::vector<Prepared> prepared;
    prepared.reserve(ops.size());
    std::vector<kernels::QuantJob> jobs;
    for (const planner::ConvOp &op : ops) {
        prepared.push_back(prepare(layout_, op, sources, arena, arena_bytes));
        const Prepared &p = prepared.back();
        if (p.quantize) jobs.push_back({p.in, p.out, p.scales});
    }
    platform::cudaCheck(
        kernels::blockQuantizeFp8Batch(jobs.data(), static_cast<int>(jobs.size()), stream,
                                       nonfinite_.as<unsigned int>(), max_ctas_),
        "FP8 quantization of {} slot(s)", jobs.size());
    for (size_t i = 0; i < prepared.size(); ++i) {
        const Prepared &p = prepared[i];
        if (p.quantize) continue;
        platform::cudaCheck(kernels::castCopy(p.in, p.out, stream, max_ctas_), "converting '{}'",
                            layout_.sources()[ops[i].source].name);
    }
}

uint32_t CudaSlotConverter::takeNonfiniteBlocks(cudaStream_t stream) {
    platform::DeviceGuard guard(nonfinite_.device());
    unsigned int count = 0;
    platform::cudaCheck(
        cudaMemcpyAsync(&count, nonfinite_.data(), sizeof count, cudaMemcpyDeviceToHost, stream),
        "reading the NaN/Inf block count");
    platform::cudaCheck(cudaMemsetAsync(nonfinite_.data(), 0, sizeof count, stream),
                        "resetting the NaN/Inf block count");
    platform::cudaCheck(cudaStreamSynchronize(stream), "converting slots");
    return count;
}

}  // namespace weightsync::convert
