#include "layout/hf_config.h"

#include "common/error.h"
#include "layout/builder.h"
#include "layout/json_fields.h"
#include "layout/limits.h"
#include "layout/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace weightsync::layout {

using nlohmann::json;

std::vector<std::string> hfArchitectures() {
    return {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
            "DeepseekV3ForCausalLM"};
}

namespace {

/// Reads a config.json strictly where weightsync needs it (sizes in range, of the right type),
/// ignoring the many keys it does not.
class Config {
  public:
    explicit Config(const json &config) : f_(config, "HF config") {}

    [[nodiscard]] int64_t dim(std::string_view key) const {
        return f_.integer(key, 1, limits::kMaxDim);
    }
    [[nodiscard]] int64_t dim(std::string_view key, int64_t fallback) const {
        return present(key) ? dim(key) : fallback;
    }
    /// A dimension that may be absent or null (e.g. DeepSeek's q_lora_rank).
    [[nodiscard]] std::optional<int64_t> optionalDim(std::string_view key) const {
        if (!present(key)) return std::nullopt;
        return dim(key);
    }
    [[nodiscard]] int64_t count(std::string_view key, int64_t lo, int64_t hi,
                                int64_t fallback) const {
        return present(key) ? f_.integer(key, lo, hi) : fallback;
    }
    [[nodiscard]] bool flag(std::string_view key, bool fallback) const {
        return present(key) ? f_.boolean(key) : fallback;
    }
    [[nodiscard]] std::vector<int64_t> layerList(std::string_view key) const {
        std::vector<int64_t> out;
        if (!present(key)) return out;
        const json &list = f_.array(key, limits::kMaxLayers);
        for (size_t i = 0; i < list.size(); ++i) {
            out.push_back(jsonfields::integer(list[i], fmt::format("{}[{}]", f_.name(key), i), 0,
                                              limits::kMaxLayers - 1));
        }
        return out;
    }
    [[nodiscard]] const jsonfields::Fields &fields() const { return f_; }

  private:
    [[nodiscard]] bool present(std::string_view key) const {
        return f_.has(key) && !f_.at(key).is_null();
    }
    jsonfields::Fields f_;
};

class Params {
  public:
    explicit Params(std::vector<HfParam> &out) : out_(out) {}
    void add(std::string name, Shape shape, HfRole role, DType dtype = DType::kBF16) {
        out_.push_back({{std::move(name), std::move(shape), dtype}, role});
    }
    void linear(const std::string &module, int64_t out, int64_t in, bool bias = false) {
        add(module + ".weight", {out, in}, HfRole::kLinear);
        if (bias) add(module + ".bias", {out}, HfRole::kBias);
    }
    void norm(const std::string &module, int64_t n) { add(module + ".weight", {n}, HfRole::kNorm); }
    void mlp(const std::string &m, int64_t hidden, int64_t inter, bool bias = false) {
        linear(m + "gate_proj", inter, hidden, bias);
        linear(m + "up_proj", inter, hidden, bias);
        linear(m + "down_proj", hidden, inter, bias);
    }
    void experts(const std::string &m, int64_t experts, int64_t hidden, int64_t inter) {
        add(m + "experts.gate_up_proj", {experts, 2 * inter, hidden}, HfRole::kExperts);
        add(m + "experts.down_proj", {experts, hidden, inter}, HfRole::kExperts);
    }

  private:
    std::vector<HfParam> &out_;
};

struct Common {
    int64_t vocab, hidden, layers, heads;
    bool tie;
};

Common common(const Config &c) {
    Common k{c.dim("vocab_size"), c.dim("hidden_size"),
             c.count("num_hidden_layers", 1, limits::kMaxLayers, -1), c.dim("num_attention_heads"),
             c.flag("tie_word_embeddings", false)};
    check(k.layers >= 1, Errc::kInvalidArgument, "HF config: 'num_hidden_layers' is required");
    return k;
}

void embeddings(Params &p, const Common &k) {
    p.add("model.embed_tokens.weight", {k.vocab, k.hidden}, HfRole::kEmbedding);
}

void head(Params &p, const Common &k) {
    p.norm("model.norm", k.hidden);
    if (!k.tie) p.add("lm_head.weight", {k.vocab, k.hidden}, HfRole::kLinear);
}

/// Llama / Qwen2 / Qwen3 (and Qwen3-MoE's) attention and norms of one layer.
void gqaAttention(Params &p, const Config &c, const Common &k, const std::string &arch,
                  const std::string &l) {
    const bool qwen3 = arch.starts_with("Qwen3");
    const int64_t kv = c.dim("num_key_value_heads", k.heads);
    check(k.heads % kv == 0, Errc::kInvalidArgument,
          "HF config: num_attention_heads {} is not a multiple of num_key_value_heads {}", k.heads,
          kv);
    // Qwen3Config defaults head_dim to 128; the others (and Qwen3-MoE) to hidden / heads.
    const int64_t hd = c.dim("head_dim", arch == "Qwen3ForCausalLM" ? 128 : k.hidden / k.heads);
    const bool qwen2 = arch == "Qwen2ForCausalLM";
    const bool bias = c.flag("attention_bias", false);
    const std::string a = l + "self_attn.";
    p.linear(a + "q_proj", k.heads * hd, k.hidden, bias || qwen2);
    p.linear(a + "k_proj", kv * hd, k.hidden, bias || qwen2);
    p.linear(a + "v_proj", kv * hd, k.hidden, bias || qwen2);
    p.linear(a + "o_proj", k.hidden, k.heads * hd, bias && !qwen2);
    if (qwen3) {
        p.norm(a + "q_norm", hd);
        p.norm(a + "k_norm", hd);
    }
}

void dense(Params &p, const Config &c, const std::string &arch) {
    const Common k = common(c);
    const int64_t inter = c.dim("intermediate_size");
    const bool mlp_bias = arch == "LlamaForCausalLM" && c.flag("mlp_bias", false);
    embeddings(p, k);
    for (int64_t i = 0; i < k.layers; ++i) {
        const std::string l = fmt::format("model.layers.{}.", i);
        gqaAttention(p, c, k, arch, l);
        p.mlp(l + "mlp.", k.hidden, inter, mlp_bias);
        p.norm(l + "input_layernorm", k.hidden);
        p.norm(l + "post_attention_layernorm", k.hidden);
    }
    head(p, k);
}

void qwen3Moe(Params &p, const Config &c) {
    const Common k = common(c);
    // Qwen's config.json says num_experts; transformers >= 5 saves it as num_local_experts.
    const int64_t experts = c.count("num_experts", 0, limits::kMaxExperts,
                                    c.count("num_local_experts", 0, limits::kMaxExperts, 0));
    const int64_t step = c.count("decoder_sparse_step", 1, limits::kMaxLayers, 1);
    const std::vector<int64_t> mlp_only = c.layerList("mlp_only_layers");
    embeddings(p, k);
    for (int64_t i = 0; i < k.layers; ++i) {
        const std::string l = fmt::format("model.layers.{}.", i);
        gqaAttention(p, c, k, "Qwen3MoeForCausalLM", l);
        const bool sparse = std::find(mlp_only.begin(), mlp_only.end(), i) == mlp_only.end() &&
                            experts > 0 && (i + 1) % step == 0;
        if (sparse) {
            p.add(l + "mlp.gate.weight", {experts, k.hidden}, HfRole::kRouter);
            p.experts(l + "mlp.", experts, k.hidden, c.dim("moe_intermediate_size"));
        } else {
            p.mlp(l + "mlp.", k.hidden, c.dim("intermediate_size"));
        }
        p.norm(l + "input_layernorm", k.hidden);
        p.norm(l + "post_attention_layernorm", k.hidden);
    }
    head(p, k);
}

void deepseekV3(Params &p, const Config &c) {
    const Common k = common(c);
    const std::optional<int64_t> q_lora = c.optionalDim("q_lora_rank");
    const int64_t kv_lora = c.dim("kv_lora_rank"), rope = c.dim("qk_rope_head_dim");
    const int64_t nope = c.dim("qk_nope_head_dim"), v_head = c.dim("v_head_dim");
    const int64_t experts = c.count("n_routed_experts", 1, limits::kMaxExperts,
                                    c.count("num_local_experts", 1, limits::kMaxExperts, 256));
    const int64_t shared = c.count("n_shared_experts", 0, 64, 1);
    const int64_t first_dense = c.count("first_k_dense_replace", 0, limits::kMaxLayers, 3);
    const int64_t moe_inter = c.dim("moe_intermediate_size");
    const bool bias = c.flag("attention_bias", false);
    embeddings(p, k);
    for (int64_t i = 0; i < k.layers; ++i) {
        const std::string l = fmt::format("model.layers.{}.", i);
        const std::string a = l + "self_attn.";
        if (q_lora) {
            p.linear(a + "q_a_proj", *q_lora, k.hidden, bias);
            p.norm(a + "q_a_layernorm", *q_lora);
            p.linear(a + "q_b_proj", k.heads * (nope + rope), *q_lora);
        } else {
            p.linear(a + "q_proj", k.heads * (nope + rope), k.hidden);
        }
        p.linear(a + "kv_a_proj_with_mqa", kv_lora + rope, k.hidden, bias);
        p.norm(a + "kv_a_layernorm", kv_lora);
        p.linear(a + "kv_b_proj", k.heads * (nope + v_head), kv_lora);
        p.linear(a + "o_proj", k.hidden, k.heads * v_head, bias);
        const std::string m = l + "mlp.";
        if (i < first_dense) {
            p.mlp(m, k.hidden, c.dim("intermediate_size"));
        } else {
            p.add(m + "gate.weight", {experts, k.hidden}, HfRole::kRouter);
            p.add(m + "gate.e_score_correction_bias", {experts}, HfRole::kBuffer, DType::kF32);
            p.experts(m, experts, k.hidden, moe_inter);
            if (shared > 0) p.mlp(m + "shared_experts.", k.hidden, moe_inter * shared);
        }
        p.norm(l + "input_layernorm", k.hidden);
        p.norm(l + "post_attention_layernorm", k.hidden);
    }
    head(p, k);
}

/// transformers' should_convert_module, by name components: `pattern` names the module itself,
/// one of its parents, or a module path inside it.
bool skipped(const std::string &module, const std::vector<std::string> &patterns) {
    const std::string dotted = "." + module + ".";
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string &p) {
        return !p.empty() && dotted.find("." + p + ".") != std::string::npos;
    });
}

std::string moduleOf(const std::string &name) {
    const size_t dot = name.rfind('.');
    return dot == std::string::npos ? name : name.substr(0, dot);
}

}  // namespace

HfModel hfModel(const json &config) {
    const Config c(config);
    const json &archs = c.fields().array("architectures", 16);
    check(!archs.empty() && archs[0].is_string(), Errc::kInvalidArgument,
          "HF config: 'architectures' must list the model class, got {}", jsonfields::brief(archs));
    HfModel model;
    model.architecture = archs[0].get<std::string>();
    Params p(model.params);
    const std::string &a = model.architecture;
    if (a == "LlamaForCausalLM" || a == "Qwen2ForCausalLM" || a == "Qwen3ForCausalLM") {
        dense(p, c, a);
    } else if (a == "Qwen3MoeForCausalLM") {
        qwen3Moe(p, c);
    } else if (a == "DeepseekV3ForCausalLM") {
        deepseekV3(p, c);
    } else {
        fail(Errc::kUnsupported, "HF config: architecture '{}' is not supported (supported: {})", a,
             fmt::join(hfArchitectures(), ", "));
    }
    if (c.fields().has("quantization_config")) {
        const jsonfields::Fields q(c.fields().at("quantization_config"),
                                   "HF config: quantization_config");
        if (q.has("weight_block_size")) {
            const json &block = q.at("weight_block_size");
            check(block == json::array({128, 128}), Errc::kUnsupported,
                  "HF config: weight_block_size {} is not supported: weightsync quantizes to "
                  "128x128 blocks",
                  jsonfields::brief(block));
        }
        if (q.has("modules_to_not_convert") && !q.at("modules_to_not_convert").is_null()) {
            const json &list = q.array("modules_to_not_convert", limits::kMaxTensors);
            for (size_t i = 0; i < list.size(); ++i) {
                check(list[i].is_string(), Errc::kInvalidArgument,
                      "HF config: quantization_config.modules_to_not_convert[{}] must be a "
                      "string",
                      i);
                model.modules_to_not_convert.push_back(list[i].get<std::string>());
            }
        }
    }
    return model;
}

HfModel loadHfConfig(const std::string &path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    check(fs::is_regular_file(path, ec), Errc::kNotFound, "cannot open HF config '{}'", path);
    const auto size = fs::file_size(path, ec);
    check(!ec && static_cast<int64_t>(size) <= limits::kMaxLayoutFileBytes, Errc::kInvalidArgument,
          "HF config '{}' is larger than {} bytes", path, limits::kMaxLayoutFileBytes);
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    check(in.good() || in.eof(), Errc::kIo, "cannot read HF config '{}'", path);
    try {
        return hfModel(jsonfields::parse(text.str(), fmt::format("HF config '{}'", path)));
    } catch (const Error &e) {
        throw jsonfields::inContext(e, fmt::format("'{}'", path));
    }
}

std::vector<ParamInfo> hfTrainerParams(const HfModel &model) {
    std::vector<ParamInfo> out;
    for (const HfParam &p : model.params) out.push_back(p.param);
    return out;
}

std::vector<ParamInfo> hfTargetParams(const HfModel &model, std::string_view rules_name) {
    const rules::RuleSet &r = rules::ruleSet(rules_name);
    std::vector<std::string> keep = r.keep_bf16_modules;
    keep.insert(keep.end(), model.modules_to_not_convert.begin(),
                model.modules_to_not_convert.end());
    std::map<std::string, const HfParam *> by_name;
    for (const HfParam &p : model.params) by_name[p.param.name] = &p;
    const auto quantized = [&](const HfParam &p) {
        return (p.role == HfRole::kLinear || p.role == HfRole::kExperts) &&
               !skipped(moduleOf(p.param.name), keep);
    };

    std::vector<ParamInfo> out;
    const auto emit = [&](const std::string &name, const Shape &shape, DType dtype, bool fp8,
                          bool expert) {
        out.push_back({name, shape, fp8 ? DType::kF8E4M3 : dtype});
        if (fp8) out.push_back({scaleName(name), scaleShape(shape, expert), DType::kF32});
    };
    std::set<std::string> done;
    for (const HfParam &p : model.params) {
        const std::string &name = p.param.name;
        if (done.contains(name)) continue;
        // Stacked experts named as the rule set names them.
        if (p.role == HfRole::kExperts) {
            const std::string base = name.substr(0, name.rfind('.') + 1);  // "...experts."
            const std::string part = name.substr(base.size());
            const rules::ExpertTarget *target = nullptr;
            for (const rules::ExpertTarget &t : r.experts) {
                for (const auto &alt : t.sources) {
                    if (alt.size() == 1 && alt.front() == part) target = &t;
                }
            }
            const std::string dest =
                target ? base + r.expert_containers.front() + target->dest : name;
            emit(dest, p.param.shape, p.param.dtype, quantized(p), true);
            done.insert(name);
            continue;
        }
        // Fusions: the first part of a fusion whose parts all exist stands for all of them.
        const size_t dot = name.rfind('.');
        const std::string module = moduleOf(name);
        const std::string leaf = module.substr(module.rfind('.') + 1);
        const std::string parent = module.substr(0, module.size() - leaf.size());
        const std::string param = dot == std::string::npos ? "" : name.substr(dot);
        bool fused_here = false;
        for (const rules::Fusion &f : r.fusions) {
            if (f.parts.front() != leaf) continue;
            std::vector<const HfParam *> parts;
            for (const std::string &part : f.parts) {
                auto it = by_name.find(fmt::format("{}{}{}", parent, part, param));
                if (it != by_name.end()) parts.push_back(it->second);
            }
            if (parts.size() != f.parts.size()) continue;
            Shape shape = p.param.shape;
            shape[0] = 0;
            bool fp8 = f.quantized;
            for (const HfParam *q : parts) {
                shape[0] += q->param.shape[0];
                fp8 = fp8 && quantized(*q);
                done.insert(q->param.name);
            }
            emit(fmt::format("{}{}{}", parent, f.fused, param), shape, p.param.dtype, fp8, false);
            fused_here = true;
            break;
        }
        if (fused_here) continue;
        emit(name, p.param.shape, p.param.dtype, quantized(p), false);
        done.insert(name);
    }
    return out;
}

Layout deriveFromHf(const HfModel &model, std::string_view rules, const std::string &name) {
    return deriveLayout(hfTrainerParams(model), hfTargetParams(model, rules), rules, name);
}

}  // namespace weightsync::layout
