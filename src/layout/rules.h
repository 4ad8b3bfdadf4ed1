#pragma once
// Rule sets of layout derivation (derive.h): how an inference engine names, fuses, stacks,
// splits and quantizes a Hugging Face-named trainer's parameters. One file per rule set
// (rules_vllm.cc, rules_hf_fp8.cc); documented in docs/layout-format.md#rule-sets.

#include "layout/layout.h"

#include <string>
#include <string_view>
#include <vector>

namespace weightsync::layout::rules {

/// An inference module fused from trainer modules, concatenated along rows in `parts` order:
/// "<prefix>.qkv_proj.<param>" <- "<prefix>.q_proj.<param>", "<prefix>.k_proj.<param>", ...
struct Fusion {
    std::string fused;
    std::vector<std::string> parts;
    /// When the layout is generated from a config (no inference module to read dtypes from):
    /// whether the engine quantizes it when its parts are linear layers.
    bool quantized = true;
};

/// A stacked-expert inference tensor ([E, rows, cols]) and the trainer's stacked expert tensors
/// that fill it: "<...>.experts.<container><dest>" <- "<...>.experts.<part>" for each part of
/// the first alternative the trainer has.
struct ExpertTarget {
    std::string dest;                               // "w13_weight"
    std::vector<std::vector<std::string>> sources;  // {{"gate_up_proj"}, {"gate_proj", "up_proj"}}
    std::vector<std::string> per_expert;            // trainer modules it would stack per expert
    TpSplit tp = TpSplit::kReplicated;              // when every part is a separate source
};

struct RuleSet {
    std::string name;
    std::string engine;  // what it describes, for messages
    std::vector<Fusion> fusions;
    /// Where the inference side keeps stacked experts below the trainer's "experts." module
    /// ("routed_experts." in vLLM >= 0.33, "" before); the first is the one generated.
    std::vector<std::string> expert_containers;
    std::vector<ExpertTarget> experts;
    /// TP split by module name (the name component before the parameter's): column-parallel
    /// ("rows") and row-parallel ("cols") linears; everything else is replicated.
    std::vector<std::string> rows_modules, cols_modules;
    /// Generation from a config: modules the engine never quantizes (beyond embeddings, norms,
    /// routers and biases), and parameters it keeps in fp32.
    std::vector<std::string> keep_bf16_modules;
    std::vector<std::string> fp32_params;
};

/// The rule set named `name`; Error(kNotFound) listing the known ones otherwise.
const RuleSet &ruleSet(std::string_view name);
std::vector<std::string> names();

RuleSet vllmRules();
RuleSet hfFp8Rules();

}  // namespace weightsync::layout::rules
