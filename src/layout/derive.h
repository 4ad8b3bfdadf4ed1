#pragma once
// Layout derivation (issue 15): a Layout computed from the two sides' parameter lists — names,
// shapes, dtypes, no weights — under a named rule set, so that a model needs no hand-written
// layout. Pure and CPU-only.
//
// The inference side drives it: every inference tensor is matched to the trainer tensors that
// produce it (the same name; a fusion of the rule set such as vLLM's qkv_proj <- q_proj, k_proj,
// v_proj; or a stacked-expert tensor such as vLLM's w13_weight <- experts.gate_up_proj), FP8
// tensors are quantized with their `<name>_scale_inv` block scales, everything else is copied
// (cast bf16 <-> fp32 where the two sides differ). Which tensors are FP8 is therefore the
// inference side's own convention (modules_to_not_convert and the like), read off its dtypes.
//
// The result is canonical — its entries are ordered by destination name in natural order, not by
// the order of the inputs — so the trainer and every inference rank get the same layout and the
// same fingerprint from the same two parameter sets, whichever side derives it.

#include "layout/layout.h"

#include <string>
#include <string_view>
#include <vector>

namespace weightsync::layout {

/// One parameter (or persistent buffer) of a model as a side holds it, whole (unsharded).
struct ParamInfo {
    std::string name;
    Shape shape;
    DType dtype = DType::kBF16;
};

/// The rule sets deriveLayout knows: "hf-fp8", "vllm" (docs/layout-format.md#rule-sets).
std::vector<std::string> ruleSetNames();

/// The layout turning `trainer`'s parameters into `inference`'s under rule set `rules`, named
/// `name`. Throws Error(kInvalidArgument) naming the tensor when a tensor of either side has no
/// counterpart ("inference tensor X has no trainer source under rules vllm"), shapes or parts do
/// not add up, a scale tensor is missing or misshapen, a dtype cannot be converted; and
/// Error(kNotFound) for an unknown rule set.
Layout deriveLayout(const std::vector<ParamInfo> &trainer, const std::vector<ParamInfo> &inference,
                    std::string_view rules, const std::string &name);

/// The same layout with its entries in the canonical order of derived layouts (rules by
/// destination name in natural order, each destination followed by its scale, sources in the
/// order the rules use them), renamed when `name` is not empty. A built-in layout and a derived
/// one describe the same conversion exactly when canonicalOrder gives both one fingerprint.
Layout canonicalOrder(const Layout &layout, const std::string &name = "");

/// "a.2.b" < "a.10.b": runs of digits compare as numbers.
bool naturalLess(std::string_view a, std::string_view b);

}  // namespace weightsync::layout
