#pragma once
// Helper for the built-in layouts: declares trainer sources and derives each destination (and its
// scale tensor) from the sources it fuses.

#include "layout/layout.h"

namespace weightsync::layout {

class LayoutBuilder {
  public:
    explicit LayoutBuilder(std::string name) : name_(std::move(name)) {}

    /// A trainer tensor; expert tensors are [E, R, C] with expert_dim 0.
    void source(const std::string &name, Shape shape, DType dtype = DType::kBF16,
                bool expert = false);

    /// dest = concat(sources) along rows, element-wise copy/cast to `dtype`.
    void copy(const std::string &dest, const std::vector<std::string> &sources, DType dtype,
              TpSplit tp = TpSplit::kReplicated);
    /// Same name on both sides, copied.
    void same(const std::string &name, Shape shape, DType src_dtype, DType dst_dtype,
              TpSplit tp = TpSplit::kReplicated);
    /// dest = fp8(concat(sources)) with scale tensor `scale`.
    void quantize(const std::string &dest, const std::string &scale,
                  const std::vector<std::string> &sources, TpSplit tp, bool expert = false);

    Layout build() &&;

  private:
    Shape fusedShape(const std::vector<std::string> &sources, bool expert) const;

    std::string name_;
    std::vector<SourceTensor> sources_;
    std::vector<DestTensor> dests_;
    std::vector<Conversion> conversions_;
};

/// "x.weight" -> "x.weight_scale_inv" (vLLM/DeepSeek naming for block-FP8 scales).
std::string scaleName(const std::string &weight);

}  // namespace weightsync::layout
