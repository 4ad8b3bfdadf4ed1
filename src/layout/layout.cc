#include "layout/layout.h"

#include "common/error.h"
#include "layout/json_layout.h"
#include "layout/limits.h"

#include <xxhash.h>

#include <set>

namespace weightsync::layout {

int64_t ceilDiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

Extent3 canonicalExtent(const Shape &shape, bool expert) {
    if (expert) {
        check(shape.size() == 3, Errc::kInvalidArgument, "expert tensor must be 3-D, got {}",
              shapeString(shape));
        return {shape[0], shape[1], shape[2]};
    }
    switch (shape.size()) {
        case 1: return {1, shape[0], 1};
        case 2: return {1, shape[0], shape[1]};
        default:
            fail(Errc::kInvalidArgument, "non-expert tensor must be 1-D or 2-D, got {}",
                 shapeString(shape));
    }
}

Extent3 sourceExtent(const SourceTensor &source) {
    return canonicalExtent(source.shape, source.expert_dim == 0);
}

Shape scaleShape(const Shape &shape, bool expert) {
    const Extent3 e = canonicalExtent(shape, expert);
    if (expert) return {e.g, ceilDiv(e.r, kFp8BlockSize), ceilDiv(e.c, kFp8BlockSize)};
    return {ceilDiv(e.r, kFp8BlockSize), ceilDiv(e.c, kFp8BlockSize)};
}

namespace {

/// Bytes of a tensor of this shape, computed without overflow; throws naming the tensor when a
/// dimension or the total is out of limits (see limits.h).
int64_t checkedBytes(std::string_view kind, const std::string &name, const Shape &shape,
                     DType dtype) {
    check(!name.empty() && static_cast<int64_t>(name.size()) <= limits::kMaxNameLength,
          Errc::kInvalidArgument, "{} tensor names must have 1 to {} characters, got {}", kind,
          limits::kMaxNameLength, name.size());
    check(!shape.empty() && static_cast<int64_t>(shape.size()) <= limits::kMaxRank,
          Errc::kInvalidArgument, "{} tensor '{}' must have 1 to {} dimensions, has {}", kind, name,
          limits::kMaxRank, shape.size());
    auto bytes = static_cast<int64_t>(dtypeSize(dtype));
    for (const int64_t d : shape) {
        check(d >= 1 && d <= limits::kMaxDim, Errc::kInvalidArgument,
              "{} tensor '{}' has shape {}: every dimension must be in [1, {}]", kind, name,
              shapeString(shape), limits::kMaxDim);
        check(bytes <= limits::kMaxTensorBytes / d, Errc::kInvalidArgument,
              "{} tensor '{}' of shape {} is larger than the limit of {} bytes per tensor", kind,
              name, shapeString(shape), limits::kMaxTensorBytes);
        bytes *= d;
    }
    return bytes;
}

template <typename Tensor>
void checkTensors(std::string_view kind, const std::string &layout,
                  const std::vector<Tensor> &tensors) {
    check(static_cast<int64_t>(tensors.size()) <= limits::kMaxTensors, Errc::kInvalidArgument,
          "layout '{}' has {} {} tensors, more than the limit of {}", layout, tensors.size(), kind,
          limits::kMaxTensors);
    int64_t total = 0;
    for (const Tensor &t : tensors) {
        total += checkedBytes(kind, t.name, t.shape, t.dtype);
        check(total <= limits::kMaxLayoutBytes, Errc::kInvalidArgument,
              "the {} tensors of layout '{}' exceed the limit of {} bytes in all", kind, layout,
              limits::kMaxLayoutBytes);
    }
}

}  // namespace

Layout::Layout(std::string name, std::vector<SourceTensor> sources, std::vector<DestTensor> dests,
               std::vector<Conversion> conversions)
    : name_(std::move(name)),
      sources_(std::move(sources)),
      dests_(std::move(dests)),
      conversions_(std::move(conversions)) {
    checkTensors("source", name_, sources_);
    checkTensors("destination", name_, dests_);
    check(conversions_.size() <= dests_.size(), Errc::kInvalidArgument,
          "layout '{}' has {} rules for {} destination tensors", name_, conversions_.size(),
          dests_.size());
    for (size_t i = 0; i < sources_.size(); ++i) {
        check(source_index_.emplace(sources_[i].name, i).second, Errc::kInvalidArgument,
              "layout '{}': source tensor '{}' listed twice", name_, sources_[i].name);
    }
    for (size_t i = 0; i < dests_.size(); ++i) {
        check(dest_index_.emplace(dests_[i].name, i).second, Errc::kInvalidArgument,
              "layout '{}': destination tensor '{}' listed twice", name_, dests_[i].name);
    }
    validate();
}

size_t Layout::sourceIndex(std::string_view name) const {
    auto it = source_index_.find(name);
    if (it == source_index_.end()) {
        fail(Errc::kNotFound, "layout '{}' has no source tensor '{}'", name_, name);
    }
    return it->second;
}

size_t Layout::destIndex(std::string_view name) const {
    auto it = dest_index_.find(name);
    if (it == dest_index_.end()) {
        fail(Errc::kNotFound, "layout '{}' has no destination tensor '{}'", name_, name);
    }
    return it->second;
}

const SourceTensor &Layout::source(std::string_view name) const {
    return sources_[sourceIndex(name)];
}

const DestTensor &Layout::dest(std::string_view name) const {
    return dests_[destIndex(name)];
}

bool Layout::hasSource(std::string_view name) const {
    return source_index_.contains(name);
}
bool Layout::hasDest(std::string_view name) const {
    return dest_index_.contains(name);
}

namespace {

void validateConversion(const Layout &layout, const Conversion &conv) {
    const std::string &d = conv.dest;
    check(!conv.sources.empty(), Errc::kInvalidArgument, "destination '{}' has no sources", d);
    check(layout.hasDest(d), Errc::kInvalidArgument,
          "conversion writes '{}', which is not a destination tensor", d);
    const DestTensor &dest = layout.dest(d);
    const Extent3 de = canonicalExtent(dest.shape, conv.expert);
    check(!conv.expert || de.g <= limits::kMaxExperts, Errc::kInvalidArgument,
          "expert destination '{}' has {} experts, more than the limit of {}", d, de.g,
          limits::kMaxExperts);
    int64_t rows = 0;
    for (size_t i = 0; i < conv.sources.size(); ++i) {
        const std::string &s = conv.sources[i];
        check(layout.hasSource(s), Errc::kInvalidArgument,
              "destination '{}' names source '{}', which the trainer layout lacks", d, s);
        const SourceTensor &src = layout.source(s);
        check(src.dtype == DType::kBF16 || src.dtype == DType::kF32, Errc::kInvalidArgument,
              "source '{}' must be bf16 or fp32, is {}", s, dtypeName(src.dtype));
        check(src.expert_dim == (conv.expert ? 0 : -1), Errc::kInvalidArgument,
              "source '{}' expert_dim {} does not match destination '{}' ({})", s, src.expert_dim,
              d, conv.expert ? "expert" : "non-expert");
        check(src.fsdp_dim == 0 || src.fsdp_dim == -1, Errc::kInvalidArgument,
              "source '{}': only fsdp_dim 0 or -1 is supported, got {}", s, src.fsdp_dim);
        const Extent3 se = canonicalExtent(src.shape, conv.expert);
        check(se.g == de.g && se.c == de.c, Errc::kInvalidArgument,
              "source '{}' {} does not fit destination '{}' {}", s, shapeString(src.shape), d,
              shapeString(dest.shape));
        if (conv.kind == ConvKind::kQuantizeFp8 && i + 1 < conv.sources.size()) {
            check(se.r % kFp8BlockSize == 0, Errc::kInvalidArgument,
                  "fused FP8 destination '{}': source '{}' has {} rows, not a multiple of {}, "
                  "so its scale blocks would straddle the next source",
                  d, s, se.r, kFp8BlockSize);
        }
        rows += se.r;
    }
    check(rows == de.r, Errc::kInvalidArgument,
          "destination '{}' has {} rows but its sources add up to {}", d, de.r, rows);
    if (conv.kind == ConvKind::kQuantizeFp8) {
        check(dest.dtype == DType::kF8E4M3, Errc::kInvalidArgument,
              "quantized destination '{}' must be fp8_e4m3, is {}", d, dtypeName(dest.dtype));
        check(dest.shape.size() >= 2, Errc::kInvalidArgument,
              "quantized destination '{}' must be 2-D or 3-D", d);
        check(layout.hasDest(conv.scale), Errc::kInvalidArgument,
              "quantized destination '{}' has no scale tensor '{}'", d, conv.scale);
        const DestTensor &scale = layout.dest(conv.scale);
        check(scale.dtype == DType::kF32, Errc::kInvalidArgument, "scale tensor '{}' must be fp32",
              conv.scale);
        check(scale.shape == scaleShape(dest.shape, conv.expert), Errc::kInvalidArgument,
              "scale tensor '{}' has shape {}, expected {} for '{}'", conv.scale,
              shapeString(scale.shape), shapeString(scaleShape(dest.shape, conv.expert)), d);
    } else {
        check(conv.scale.empty(), Errc::kInvalidArgument,
              "unquantized destination '{}' must not have a scale tensor", d);
        check(dest.dtype == DType::kBF16 || dest.dtype == DType::kF32, Errc::kInvalidArgument,
              "copied destination '{}' must be bf16 or fp32, is {}", d, dtypeName(dest.dtype));
    }
}

}  // namespace

void Layout::validate() const {
    std::set<std::string, std::less<>> produced;
    std::set<std::string, std::less<>> consumed;
    for (const Conversion &conv : conversions_) {
        validateConversion(*this, conv);
        check(produced.insert(conv.dest).second, Errc::kInvalidArgument,
              "destination '{}' is produced twice", conv.dest);
        if (!conv.scale.empty()) {
            check(produced.insert(conv.scale).second, Errc::kInvalidArgument,
                  "scale tensor '{}' is produced twice", conv.scale);
        }
        for (const std::string &s : conv.sources) {
            check(consumed.insert(s).second, Errc::kInvalidArgument,
                  "source '{}' feeds more than one destination", s);
        }
    }
    for (const DestTensor &d : dests_) {
        check(produced.contains(d.name), Errc::kInvalidArgument,
              "destination tensor '{}' is produced by no conversion", d.name);
    }
    for (const SourceTensor &s : sources_) {
        check(consumed.contains(s.name), Errc::kInvalidArgument,
              "trainer tensor '{}' maps to no destination (it would never be sent)", s.name);
    }
}

std::string Layout::fingerprint() const {
    const std::string text = toJson(*this).dump();
    return fmt::format("{:016x}", XXH3_64bits(text.data(), text.size()));
}

int64_t Layout::sourceBytes() const {
    int64_t total = 0;
    for (const SourceTensor &s : sources_) {
        total += numel(s.shape) * static_cast<int64_t>(dtypeSize(s.dtype));
    }
    return total;
}

int64_t Layout::destBytes() const {
    int64_t total = 0;
    for (const DestTensor &d : dests_) {
        total += numel(d.shape) * static_cast<int64_t>(dtypeSize(d.dtype));
    }
    return total;
}

}  // namespace weightsync::layout
