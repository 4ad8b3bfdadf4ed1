#pragma once
// A model layout: the trainer-side source tensors, the inference-side destination tensors, and
// the conversion that produces each destination from its sources. Pure data, no CUDA, no I/O.
//
// Every tensor is seen through a canonical 3-D view [G, R, C]: stacked expert tensors are
// [E, R, C], matrices [1, R, C], vectors [1, n, 1]. Fused destinations concatenate their sources
// along R (the "row windows" of the reference design); expert destinations stack experts along G.

#include "common/dtype.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::layout {

/// How an inference engine with tensor parallelism splits a destination across its TP ranks.
enum class TpSplit : uint8_t {
    kReplicated,  // every TP rank holds the whole tensor
    kRows,        // column-parallel linear: output rows split; fused tensors split per source part
    kCols,        // row-parallel linear: input columns split
};

enum class ConvKind : uint8_t {
    kCopy,         // copy or cast (bf16 <-> fp32) element-wise
    kQuantizeFp8,  // e4m3 with 128x128 block scales (fp32 scale_inv)
};

struct SourceTensor {
    std::string name;
    Shape shape;          // global shape on the trainer
    DType dtype;          // bf16 values, fp32 where the trainer keeps fp32
    int fsdp_dim = 0;     // tensor dim FSDP shards (must be 0), -1 = not sharded
    int expert_dim = -1;  // 0 for stacked expert tensors [E, ...], -1 otherwise
};

struct DestTensor {
    std::string name;
    Shape shape;  // global (unsharded) shape on the inference engine
    DType dtype;
};

struct Conversion {
    std::string dest;                  // destination tensor
    std::string scale;                 // its fp32 scale tensor (kQuantizeFp8 only)
    std::vector<std::string> sources;  // concatenated in this order along canonical rows
    ConvKind kind = ConvKind::kCopy;
    TpSplit tp = TpSplit::kReplicated;
    bool expert = false;  // dest and sources have a leading expert dim
};

/// Canonical [G, R, C] extents of a tensor.
struct Extent3 {
    int64_t g = 1, r = 1, c = 1;
    [[nodiscard]] int64_t numel() const { return g * r * c; }
    bool operator==(const Extent3 &) const = default;
};

Extent3 canonicalExtent(const Shape &shape, bool expert);
/// Canonical extents of a source tensor (its expert dim, if any, leads).
Extent3 sourceExtent(const SourceTensor &source);
/// Shape of the fp32 scale tensor for a quantized tensor of this shape.
Shape scaleShape(const Shape &shape, bool expert);
int64_t ceilDiv(int64_t a, int64_t b);

class Layout {
  public:
    Layout() = default;
    Layout(std::string name, std::vector<SourceTensor> sources, std::vector<DestTensor> dests,
           std::vector<Conversion> conversions);

    [[nodiscard]] const std::string &name() const { return name_; }
    [[nodiscard]] const std::vector<SourceTensor> &sources() const { return sources_; }
    [[nodiscard]] const std::vector<DestTensor> &dests() const { return dests_; }
    [[nodiscard]] const std::vector<Conversion> &conversions() const { return conversions_; }

    /// Lookups; throw Errc::kNotFound naming the tensor.
    [[nodiscard]] const SourceTensor &source(std::string_view name) const;
    [[nodiscard]] const DestTensor &dest(std::string_view name) const;
    [[nodiscard]] size_t sourceIndex(std::string_view name) const;
    [[nodiscard]] size_t destIndex(std::string_view name) const;
    [[nodiscard]] bool hasSource(std::string_view name) const;
    [[nodiscard]] bool hasDest(std::string_view name) const;

    /// Checks every invariant (names unique, every source used exactly once, every destination
    /// produced exactly once, shapes add up, dtypes legal, scale shapes, FP8 row alignment of
    /// fused parts). Throws Errc::kInvalidArgument naming the tensor. Called by the constructor.
    void validate() const;

    /// Stable 64-bit hash of the canonical description (hex), used to match peers at init.
    [[nodiscard]] std::string fingerprint() const;

    [[nodiscard]] int64_t sourceBytes() const;
    [[nodiscard]] int64_t destBytes() const;  // weights + scales, all experts, unsharded

  private:
    std::string name_;
    std::vector<SourceTensor> sources_;
    std::vector<DestTensor> dests_;
    std::vector<Conversion> conversions_;
    std::map<std::string, size_t, std::less<>> source_index_;
    std::map<std::string, size_t, std::less<>> dest_index_;
};

}  // namespace weightsync::layout
