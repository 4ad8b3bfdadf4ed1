#include "planner/geometry.h"

#include "common/error.h"

namespace weightsync::planner {

using layout::Conversion;
using layout::ConvKind;
using layout::Extent3;
using layout::TpSplit;

int64_t layoutExperts(const layout::Layout &layout) {
    int64_t experts = 0;
    for (const Conversion &c : layout.conversions()) {
        if (!c.expert) continue;
        const int64_t e = layout.dest(c.dest).shape[0];
        check(experts == 0 || experts == e, Errc::kInvalidArgument,
              "expert tensors disagree on the expert count: '{}' has {}, others {}", c.dest, e,
              experts);
        experts = e;
    }
    return experts;
}

LocalGeometry localGeometry(const layout::Layout &layout, const Conversion &conv,
                            const PeerSpec &peer) {
    const layout::DestTensor &dest = layout.dest(conv.dest);
    const Extent3 de = layout::canonicalExtent(dest.shape, conv.expert);
    LocalGeometry g;
    g.quantized = conv.kind == ConvKind::kQuantizeFp8;

    const int tp = (conv.expert && peer.expert_parallel) ? 1 : peer.tp;
    const int tr = tp > 1 ? peer.tp_rank : 0;
    const TpSplit split = tp > 1 ? conv.tp : TpSplit::kReplicated;

    if (conv.expert) {
        g.expert_pos.assign(static_cast<size_t>(de.g), -1);
        for (size_t i = 0; i < peer.experts.size(); ++i) {
            g.expert_pos[static_cast<size_t>(peer.experts[i])] = static_cast<int64_t>(i);
        }
        g.groups = static_cast<int64_t>(peer.experts.size());
    } else {
        g.expert_pos = {0};
        g.groups = 1;
    }

    int64_t local_rows = 0;
    for (const std::string &s : conv.sources) {
        const int64_t rows = layout::canonicalExtent(layout.source(s).shape, conv.expert).r;
        int64_t lo = 0;
        int64_t hi = rows;
        if (split == TpSplit::kRows) {
            check(rows % tp == 0, Errc::kInvalidArgument,
                  "'{}': {} rows of part '{}' are not divisible by TP {}", conv.dest, rows, s, tp);
            const int64_t per = rows / tp;
            check(!g.quantized || per % kFp8BlockSize == 0, Errc::kInvalidArgument,
                  "'{}': TP {} gives {} rows of part '{}' per rank, not a multiple of the FP8 "
                  "block ({})",
                  conv.dest, tp, per, s, kFp8BlockSize);
            lo = tr * per;
            hi = lo + per;
        }
        g.part_rows.push_back(rows);
        g.part_lo.push_back(lo);
        g.part_hi.push_back(hi);
        g.part_local.push_back(local_rows);
        local_rows += hi - lo;
    }
    g.rows = local_rows;

    g.col_lo = 0;
    g.col_hi = de.c;
    if (split == TpSplit::kCols) {
        check(de.c % tp == 0 && de.c > 1, Errc::kInvalidArgument,
              "'{}': {} columns are not divisible by TP {}", conv.dest, de.c, tp);
        const int64_t per = de.c / tp;
        check(!g.quantized || per % kFp8BlockSize == 0, Errc::kInvalidArgument,
              "'{}': TP {} gives {} columns per rank, not a multiple of the FP8 block ({})",
              conv.dest, tp, per, kFp8BlockSize);
        g.col_lo = tr * per;
        g.col_hi = g.col_lo + per;
    }
    g.cols = g.col_hi - g.col_lo;
    return g;
}

std::vector<LocalTensor> localTensors(const layout::Layout &layout, const PeerSpec &peer) {
    std::vector<LocalTensor> out(layout.dests().size());
    for (const Conversion &conv : layout.conversions()) {
        const LocalGeometry g = localGeometry(layout, conv, peer);
        const auto place = [&](const std::string &name, const Shape &shape) {
            const size_t i = layout.destIndex(name);
            const DType dtype = layout.dests()[i].dtype;
            out[i] = {name, shape, dtype, numel(shape) * static_cast<int64_t>(dtypeSize(dtype))};
        };
        const size_t rank = layout.dest(conv.dest).shape.size();
        Shape shape;
        if (conv.expert) {
            shape = {g.groups, g.rows, g.cols};
        } else if (rank == 2) {
            shape = {g.rows, g.cols};
        } else {
            shape = {g.rows};
        }
        place(conv.dest, shape);
        if (g.quantized) {
            place(conv.scale, conv.expert ? Shape{g.groups, g.blockRows(), g.blockCols()}
                                          : Shape{g.blockRows(), g.blockCols()});
        }
    }
    return out;
}

}  // namespace weightsync::planner
