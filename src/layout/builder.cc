#include "layout/builder.h"

#include "common/error.h"

#include <algorithm>

namespace weightsync::layout {

std::string scaleName(const std::string &weight) {
    return weight + "_scale_inv";
}

void LayoutBuilder::source(const std::string &name, Shape shape, DType dtype, bool expert) {
    sources_.push_back({name, std::move(shape), dtype, 0, expert ? 0 : -1});
}

Shape LayoutBuilder::fusedShape(const std::vector<std::string> &sources, bool expert) const {
    Shape shape;
    int64_t rows = 0;
    for (const std::string &s : sources) {
        auto it = std::find_if(sources_.begin(), sources_.end(),
                               [&](const SourceTensor &t) { return t.name == s; });
        check(it != sources_.end(), Errc::kInternal, "builder: unknown source '{}'", s);
        if (shape.empty()) shape = it->shape;
        rows += it->shape[expert ? 1 : 0];
    }
    shape[expert ? 1 : 0] = rows;
    return shape;
}

void LayoutBuilder::copy(const std::string &dest, const std::vector<std::string> &sources,
                         DType dtype, TpSplit tp) {
    dests_.push_back({dest, fusedShape(sources, false), dtype});
    conversions_.push_back({dest, "", sources, ConvKind::kCopy, tp, false});
}

void LayoutBuilder::same(const std::string &name, Shape shape, DType src_dtype, DType dst_dtype,
                         TpSplit tp) {
    source(name, std::move(shape), src_dtype);
    copy(name, {name}, dst_dtype, tp);
}

void LayoutBuilder::quantize(const std::string &dest, const std::string &scale,
                             const std::vector<std::string> &sources, TpSplit tp, bool expert) {
    Shape shape = fusedShape(sources, expert);
    dests_.push_back({dest, shape, DType::kF8E4M3});
    dests_.push_back({scale, scaleShape(shape, expert), DType::kF32});
    conversions_.push_back({dest, scale, sources, ConvKind::kQuantizeFp8, tp, expert});
}

Layout LayoutBuilder::build() && {
    return Layout(std::move(name_), std::move(sources_), std::move(dests_),
                  std::move(conversions_));
}

}  // namespace weightsync::layout
