#include "convert/slot_converter.h"

#include "common/error.h"
#include "kernels/convert/cast_ref.h"
#include "kernels/fp8/block_quant_ref.h"

namespace weightsync::convert {

OpSource opSource(const layout::Layout &layout, const planner::ConvOp &op,
                  const SourceProvider &sources) {
    const std::string &name = layout.sources()[op.source].name;
    const SourceShard sh = op.full ? sources.full(op.source) : sources.shard(op.source);
    check(sh.data != nullptr || (op.g1 - op.g0) * (op.r1 - op.r0) * (op.c1 - op.c0) == 0,
          Errc::kNotFound, "trainer holds no {} of '{}'", op.full ? "full copy" : "shard", name);
    check(op.g0 >= sh.g0 && op.g1 <= sh.g0 + sh.groups && op.r0 >= sh.r0 &&
              op.r1 <= sh.r0 + sh.rows && op.c1 <= sh.cols,
          Errc::kInvalidArgument,
          "'{}': the plan reads experts [{}, {}) rows [{}, {}) but this rank holds experts "
          "[{}, {}) rows [{}, {})",
          name, op.g0, op.g1, op.r0, op.r1, sh.g0, sh.g0 + sh.groups, sh.r0, sh.r0 + sh.rows);
    const int64_t offset = ((op.g0 - sh.g0) * sh.rows + (op.r0 - sh.r0)) * sh.row_stride + op.c0;
    const auto *base = static_cast<const std::byte *>(sh.data);
    return {base + offset * static_cast<int64_t>(dtypeSize(sh.dtype)), sh.dtype,
            sh.rows * sh.row_stride, sh.row_stride};
}

void convertOpsCpu(const layout::Layout &layout, std::span<const planner::ConvOp> ops,
                   const SourceProvider &sources, std::byte *arena, int64_t arena_bytes) {
    for (const planner::ConvOp &op : ops) {
        const OpSource src = opSource(layout, op, sources);
        const int64_t g = op.g1 - op.g0;
        const int64_t r = op.r1 - op.r0;
        const int64_t c = op.c1 - op.c0;
        const kernels::ConstView3 in{src.data,         src.dtype,     g, r, c,
                                     src.group_stride, src.row_stride};
        check(op.offset >= 0 && planner::valuesEnd(op) <= arena_bytes, Errc::kInternal,
              "conversion of '{}' writes past the arena", layout.sources()[op.source].name);
        const kernels::View3 out{arena + op.offset, op.dtype,     g, r, c,
                                 op.group_stride,   op.row_stride};
        try {
            if (op.scale_offset >= 0) {
                const kernels::View3 scales{arena + op.scale_offset,
                                            DType::kF32,
                                            g,
                                            layout::ceilDiv(r, kFp8BlockSize),
                                            layout::ceilDiv(c, kFp8BlockSize),
                                            op.scale_group_stride,
                                            op.scale_row_stride};
                kernels::blockQuantizeFp8Ref(in, out, scales);
            } else {
                kernels::castRef(in, out);
            }
        } catch (const Error &e) {
            throw Error(e.code(),
                        "converting '" + layout.sources()[op.source].name + "': " + e.what());
        }
    }
}

}  // namespace weightsync::convert
