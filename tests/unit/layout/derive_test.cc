// Layout derivation (issue 15): layouts derived from the two sides' parameter lists under the
// "vllm" and "hf-fp8" rule sets equal the built-in layouts where they describe the same model,
// do not depend on the order of their inputs, survive a JSON round trip, and every bad input is
// refused naming the tensor.

#include "layout/derive.h"
#include "common/error.h"
#include "layout/builder.h"
#include "layout/hf_config.h"
#include "layout/json_layout.h"
#include "layout/registry.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>

namespace weightsync::layout {
namespace {

using testing::thrownBy;

std::string configPath(const std::string &name) {
    return std::string(WEIGHTSYNC_HF_CONFIGS) + "/" + name + ".json";
}

std::vector<ParamInfo> trainerOf(const Layout &l) {
    std::vector<ParamInfo> out;
    for (const SourceTensor &s : l.sources()) out.push_back({s.name, s.shape, s.dtype});
    return out;
}

std::vector<ParamInfo> inferenceOf(const Layout &l) {
    std::vector<ParamInfo> out;
    for (const DestTensor &d : l.dests()) out.push_back({d.name, d.shape, d.dtype});
    return out;
}

const Conversion &ruleFor(const Layout &l, const std::string &dest) {
    for (const Conversion &c : l.conversions()) {
        if (c.dest == dest) return c;
    }
    throw Error(Errc::kNotFound, "no rule for " + dest);
}

/// `message` of the Error fn throws (and that it is kInvalidArgument).
std::string refusal(const std::function<void()> &fn, Errc code = Errc::kInvalidArgument) {
    const auto thrown = thrownBy(fn);
    if (!thrown) return "";
    EXPECT_EQ(thrown->code, code) << thrown->message;
    return thrown->message;
}

TEST(Derive, BuiltinDenseLayoutsFromTheirOwnParameterLists) {
    // The built-in dense layouts use Hugging Face's trainer names and vLLM's fused names, so
    // deriving from their two sides under "vllm" reproduces them exactly (in canonical order).
    for (const char *model : {"qwen3-tiny", "llama-tiny", "qwen3-8b"}) {
        const Layout builtin = resolveLayout(model, 2);
        const Layout derived =
            deriveLayout(trainerOf(builtin), inferenceOf(builtin), "vllm", builtin.name());
        EXPECT_EQ(derived.fingerprint(), canonicalOrder(builtin).fingerprint()) << model;
        EXPECT_EQ(toJson(derived), toJson(canonicalOrder(builtin))) << model;
    }
}

TEST(Derive, FromHfConfigEqualsTheBuiltinDenseLayouts) {
    for (const char *model : {"qwen3-tiny", "llama-tiny"}) {
        const Layout derived = deriveFromHf(loadHfConfig(configPath(model)), "vllm", model);
        EXPECT_EQ(derived.fingerprint(), canonicalOrder(resolveLayout(model)).fingerprint())
            << model;
    }
}

/// The built-in GLM-5 layout's trainer names are the reference design's, not transformers';
/// renamed to transformers' GLM-5 (GlmMoeDsaForCausalLM) names, its two sides derive under "vllm"
/// to the same layout: the difference is the trainer's names only. (Its experts stay two stacked
/// tensors w1 / w3, which the rule set takes as well as transformers' fused gate_up_proj.)
std::string hfName(const std::string &name) {
    static const std::vector<std::pair<std::string, std::string>> kRenames{
        {"mlp.router.gate.weight", "mlp.gate.weight"},
        {"mlp.expert_bias", "mlp.gate.e_score_correction_bias"},
        {"mlp.shared_expert.w1", "mlp.shared_experts.gate_proj.weight"},
        {"mlp.shared_expert.w3", "mlp.shared_experts.up_proj.weight"},
        {"mlp.shared_expert.w2", "mlp.shared_experts.down_proj.weight"},
    };
    for (const auto &[from, to] : kRenames) {
        if (name.ends_with(from)) return name.substr(0, name.size() - from.size()) + to;
    }
    return name;
}

TEST(Derive, Glm5FromTransformersNamesDiffersFromTheBuiltinOnlyInTrainerNames) {
    for (const char *model : {"glm5-tiny", "glm5-aligned"}) {
        const Layout builtin = resolveLayout(model);
        std::vector<SourceTensor> sources = builtin.sources();
        for (SourceTensor &s : sources) s.name = hfName(s.name);
        std::vector<Conversion> rules = builtin.conversions();
        for (Conversion &c : rules) {
            for (std::string &s : c.sources) s = hfName(s);
        }
        const Layout renamed(builtin.name(), sources, builtin.dests(), rules);
        const Layout derived =
            deriveLayout(trainerOf(renamed), inferenceOf(renamed), "vllm", builtin.name());
        EXPECT_EQ(derived.fingerprint(), canonicalOrder(renamed).fingerprint()) << model;
        EXPECT_NE(derived.fingerprint(), canonicalOrder(builtin).fingerprint()) << model;
        const Conversion &w13 = ruleFor(derived, "model.layers.1.mlp.experts.w13_weight");
        EXPECT_EQ(w13.sources, (std::vector<std::string>{"model.layers.1.mlp.experts.w1",
                                                         "model.layers.1.mlp.experts.w3"}));
        EXPECT_EQ(w13.tp, TpSplit::kRows);
    }
}

TEST(Derive, DeepseekV3MlaUnderBothRuleSets) {
    const HfModel model = loadHfConfig(configPath("deepseek-v3-tiny"));
    const Layout vllm = deriveFromHf(model, "vllm", "dsv3-tiny");
    const std::string a = "model.layers.1.self_attn.";
    const Conversion &qkv_a = ruleFor(vllm, a + "fused_qkv_a_proj.weight");
    EXPECT_EQ(qkv_a.sources,
              (std::vector<std::string>{a + "q_a_proj.weight", a + "kv_a_proj_with_mqa.weight"}));
    EXPECT_EQ(qkv_a.kind, ConvKind::kQuantizeFp8);
    EXPECT_EQ(vllm.dest(a + "fused_qkv_a_proj.weight").shape, (Shape{128 + 64 + 32, 256}));
    EXPECT_EQ(ruleFor(vllm, a + "kv_b_proj.weight").tp, TpSplit::kRows);
    EXPECT_EQ(ruleFor(vllm, a + "o_proj.weight").tp, TpSplit::kCols);
    // transformers' stacked gate_up_proj is one part of w13: TP cannot split it per part, so the
    // rule leaves it whole (engines use expert parallelism for it).
    const std::string e = "model.layers.1.mlp.experts.";
    const Conversion &w13 = ruleFor(vllm, e + "routed_experts.w13_weight");
    EXPECT_EQ(w13.sources, (std::vector<std::string>{e + "gate_up_proj"}));
    EXPECT_TRUE(w13.expert);
    EXPECT_EQ(w13.tp, TpSplit::kReplicated);
    EXPECT_EQ(vllm.dest(e + "routed_experts.w13_weight_scale_inv").shape, (Shape{8, 2, 2}));
    EXPECT_EQ(ruleFor(vllm, e + "routed_experts.w2_weight").tp, TpSplit::kCols);
    EXPECT_EQ(vllm.dest("model.layers.1.mlp.gate.e_score_correction_bias").dtype, DType::kF32);
    EXPECT_EQ(vllm.dest("model.layers.1.mlp.gate.weight").dtype, DType::kBF16);
    EXPECT_EQ(vllm.dest("lm_head.weight").dtype, DType::kBF16);
    EXPECT_EQ(ruleFor(vllm, "model.layers.0.mlp.gate_up_proj.weight").sources.size(), 2U);

    const Layout hf = deriveFromHf(model, "hf-fp8", "dsv3-tiny");
    EXPECT_FALSE(hf.hasDest(a + "fused_qkv_a_proj.weight"));
    EXPECT_EQ(hf.dest(a + "q_a_proj.weight").dtype, DType::kF8E4M3);
    EXPECT_TRUE(hf.hasDest(a + "q_a_proj.weight_scale_inv"));
    EXPECT_EQ(hf.dest(e + "gate_up_proj").dtype, DType::kF8E4M3);
    EXPECT_EQ(hf.dest(e + "gate_up_proj_scale_inv").shape, (Shape{8, 2, 2}));
    EXPECT_TRUE(ruleFor(hf, e + "down_proj").expert);
    EXPECT_EQ(hf.dest("lm_head.weight").dtype, DType::kBF16);
    EXPECT_EQ(hf.sources().size(), vllm.sources().size());
}

TEST(Derive, Qwen3MoeAndMlaWithoutQLora) {
    const Layout moe = deriveFromHf(loadHfConfig(configPath("qwen3-moe-tiny")), "vllm", "moe");
    EXPECT_TRUE(moe.hasDest("model.layers.0.mlp.gate_up_proj.weight"));  // mlp_only_layers [0]
    EXPECT_TRUE(moe.hasDest("model.layers.2.mlp.experts.routed_experts.w2_weight"));
    EXPECT_EQ(moe.dest("model.layers.2.mlp.gate.weight").shape, (Shape{8, 256}));
    // transformers >= 5 saves Qwen3-MoE's num_experts as num_local_experts.
    nlohmann::json saved = nlohmann::json::parse(std::ifstream(configPath("qwen3-moe-tiny")));
    saved.erase("num_experts");
    saved["num_local_experts"] = 8;
    EXPECT_EQ(deriveFromHf(hfModel(saved), "vllm", "moe").fingerprint(), moe.fingerprint());

    nlohmann::json config = nlohmann::json::parse(R"({"architectures": ["DeepseekV3ForCausalLM"],
        "vocab_size": 256, "hidden_size": 128, "intermediate_size": 256, "moe_intermediate_size": 128,
        "num_hidden_layers": 1, "first_k_dense_replace": 1, "num_attention_heads": 2,
        "q_lora_rank": null, "kv_lora_rank": 64, "qk_rope_head_dim": 32, "qk_nope_head_dim": 32,
        "v_head_dim": 32})");
    const Layout mla = deriveFromHf(hfModel(config), "vllm", "mla");
    EXPECT_EQ(ruleFor(mla, "model.layers.0.self_attn.q_proj.weight").tp, TpSplit::kRows);
    EXPECT_TRUE(mla.hasDest("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"));
}

TEST(Derive, FingerprintDoesNotDependOnInputOrderAndSurvivesJson) {
    const HfModel model = loadHfConfig(configPath("deepseek-v3-tiny"));
    std::vector<ParamInfo> trainer = hfTrainerParams(model);
    std::vector<ParamInfo> inference = hfTargetParams(model, "vllm");
    const Layout first = deriveLayout(trainer, inference, "vllm", "x");
    std::mt19937 rng(7);
    std::shuffle(trainer.begin(), trainer.end(), rng);
    std::shuffle(inference.begin(), inference.end(), rng);
    EXPECT_EQ(deriveLayout(trainer, inference, "vllm", "x").fingerprint(), first.fingerprint());
    const Layout back = layoutFromJson(nlohmann::json::parse(toJson(first).dump()));
    EXPECT_EQ(back.fingerprint(), first.fingerprint());
    EXPECT_NE(deriveLayout(trainer, inference, "vllm", "y").fingerprint(), first.fingerprint());
}

TEST(Derive, NaturalOrder) {
    EXPECT_TRUE(naturalLess("model.layers.2.a", "model.layers.10.a"));
    EXPECT_FALSE(naturalLess("model.layers.10.a", "model.layers.2.a"));
    EXPECT_TRUE(naturalLess("a.b", "a.b.c"));
    // The same number spelt twice: plain order, so that the order stays total.
    EXPECT_TRUE(naturalLess("x.007", "x.7"));
    EXPECT_FALSE(naturalLess("x.7", "x.007"));
}

class DeriveRefusals : public ::testing::Test {
  public:  // the tests below are subclasses and use these directly
    Layout qwen3 = resolveLayout("qwen3-tiny");
    std::vector<ParamInfo> trainer = trainerOf(qwen3);
    std::vector<ParamInfo> inference = inferenceOf(qwen3);

    std::string refused(Errc code = Errc::kInvalidArgument) {
        return refusal([&] { (void)deriveLayout(trainer, inference, "vllm", "t"); }, code);
    }
    ParamInfo &find(std::vector<ParamInfo> &list, const std::string &name) {
        auto it = std::find_if(list.begin(), list.end(),
                               [&](const ParamInfo &p) { return p.name == name; });
        if (it == list.end()) throw Error(Errc::kNotFound, name);
        return *it;
    }
    void erase(std::vector<ParamInfo> &list, const std::string &name) {
        list.erase(std::find_if(list.begin(), list.end(),
                                [&](const ParamInfo &p) { return p.name == name; }));
    }
};

TEST_F(DeriveRefusals, UnknownRuleSet) {
    const std::string m =
        refusal([&] { (void)deriveLayout(trainer, inference, "sglang", "t"); }, Errc::kNotFound);
    EXPECT_NE(m.find("unknown layout rule set 'sglang' (known: hf-fp8, vllm)"), std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, DifferentArchitectures) {
    // A Llama trainer (no q_norm / k_norm) against a Qwen3 engine.
    trainer = trainerOf(resolveLayout("llama-tiny"));
    const std::string m = refused();
    EXPECT_NE(m.find("inference tensor 'model.layers.0.self_attn.q_norm.weight' [64] has no "
                     "trainer source under rules vllm"),
              std::string::npos)
        << m;
    // ... and the other way round: trainer tensors nobody receives.
    trainer = trainerOf(qwen3);
    inference = inferenceOf(resolveLayout("llama-tiny"));
    const std::string m2 = refused();
    EXPECT_NE(m2.find("trainer tensor 'model.layers.0.self_attn.k_norm.weight' has no inference "
                      "destination under rules vllm (3 more"),
              std::string::npos)
        << m2;
}

TEST_F(DeriveRefusals, DifferentSizes) {
    find(trainer, "model.embed_tokens.weight").shape = {1024, 256};
    const std::string m = refused();
    EXPECT_NE(m.find("inference tensor 'model.embed_tokens.weight' is [512,256] but its trainer "
                     "source under rules vllm"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("different models or sizes"), std::string::npos) << m;
}

TEST_F(DeriveRefusals, MissingScale) {
    erase(inference, "model.layers.1.mlp.down_proj.weight_scale_inv");
    const std::string m = refused();
    EXPECT_NE(m.find("inference tensor 'model.layers.1.mlp.down_proj.weight' is fp8_e4m3 but has "
                     "no scale tensor 'model.layers.1.mlp.down_proj.weight_scale_inv'"),
              std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, ScaleOfTheWrongShapeOrDtype) {
    find(inference, "model.layers.0.self_attn.o_proj.weight_scale_inv").shape = {1, 1};
    std::string m = refused();
    EXPECT_NE(m.find("scale tensor 'model.layers.0.self_attn.o_proj.weight_scale_inv' is [1,1], "
                     "but 128x128 block scales"),
              std::string::npos)
        << m;
    inference = inferenceOf(qwen3);
    find(inference, "model.layers.0.self_attn.o_proj.weight_scale_inv").dtype = DType::kBF16;
    m = refused();
    EXPECT_NE(m.find("is bf16, expected fp32"), std::string::npos) << m;
    // A scale whose weight is not FP8.
    inference = inferenceOf(qwen3);
    inference.push_back({"model.norm.weight_scale_inv", {1}, DType::kF32});
    m = refused();
    EXPECT_NE(m.find("'model.norm.weight_scale_inv' is the scale tensor of 'model.norm.weight', "
                     "which is bf16"),
              std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, FusedPartsThatDoNotAddUp) {
    ParamInfo &qkv = find(inference, "model.layers.0.self_attn.qkv_proj.weight");
    qkv.shape = {384, 256};
    find(inference, "model.layers.0.self_attn.qkv_proj.weight_scale_inv").shape = {3, 2};
    const std::string m = refused();
    EXPECT_NE(m.find("inference tensor 'model.layers.0.self_attn.qkv_proj.weight' has 384 rows, "
                     "but its parts under rules vllm add up to 512"),
              std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, FusedPartMissingOrMisshapen) {
    erase(trainer, "model.layers.1.self_attn.v_proj.weight");
    std::string m = refused();
    EXPECT_NE(m.find("fuses q_proj + k_proj + v_proj under rules vllm, but trainer tensor "
                     "'model.layers.1.self_attn.v_proj.weight' is missing"),
              std::string::npos)
        << m;
    trainer = trainerOf(qwen3);
    find(trainer, "model.layers.1.mlp.up_proj.weight").shape = {512, 128};
    m = refused();
    EXPECT_NE(m.find("part 'model.layers.1.mlp.up_proj.weight' does not fit"), std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, BadDtypesAndDuplicates) {
    find(trainer, "model.norm.weight").dtype = DType::kF8E4M3;
    std::string m = refused();
    EXPECT_NE(m.find("trainer tensor 'model.norm.weight' is fp8_e4m3"), std::string::npos) << m;
    trainer = trainerOf(qwen3);
    find(inference, "model.norm.weight").dtype = DType::kU8;
    m = refused();
    EXPECT_NE(m.find("inference tensor 'model.norm.weight' is u8"), std::string::npos) << m;
    inference = inferenceOf(qwen3);
    inference.push_back(inference.front());
    m = refused();
    EXPECT_NE(m.find("is listed twice"), std::string::npos) << m;
    inference = inferenceOf(qwen3);
    inference.push_back({"scalar", {}, DType::kF32});
    m = refused();
    EXPECT_NE(m.find("inference tensor 'scalar' has shape []"), std::string::npos) << m;
    find(trainer, "model.norm.weight").shape = {256, 0};
    m = refused();
    EXPECT_NE(m.find("trainer tensor 'model.norm.weight' has shape [256,0]"), std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, PerExpertTrainerIntoStackedExperts) {
    // vLLM stacks experts; a trainer holding one module per expert cannot fill w13 (the layout
    // format takes stacked trainer expert tensors).
    trainer = {{"m.layers.0.mlp.experts.0.gate_proj.weight", {128, 256}, DType::kBF16},
               {"m.layers.0.mlp.experts.0.up_proj.weight", {128, 256}, DType::kBF16}};
    inference = {{"m.layers.0.mlp.experts.routed_experts.w13_weight", {1, 256, 256}, DType::kBF16}};
    const std::string m = refused();
    EXPECT_NE(m.find("the trainer holds them per expert ('m.layers.0.mlp.experts.0.gate_proj."
                     "weight', ...)"),
              std::string::npos)
        << m;
}

TEST_F(DeriveRefusals, BadHfConfigs) {
    std::string m = refusal(
        [] {
            (void)hfModel(nlohmann::json::parse(R"({"architectures":
        ["GPT2LMHeadModel"]})"));
        },
        Errc::kUnsupported);
    EXPECT_NE(m.find("architecture 'GPT2LMHeadModel' is not supported"), std::string::npos) << m;
    m = refusal([] {
        (void)hfModel(nlohmann::json::parse(R"({"architectures": ["LlamaForCausalLM"],
            "vocab_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4})"));
    });
    EXPECT_NE(m.find("'hidden_size'"), std::string::npos) << m;
    m = refusal([] {
        (void)hfModel(nlohmann::json::parse(R"({"architectures": ["LlamaForCausalLM"],
            "vocab_size": 512.5, "hidden_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 512})"));
    });
    EXPECT_NE(m.find("'vocab_size'"), std::string::npos) << m;
    nlohmann::json q = nlohmann::json::parse(
        R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512,
            "quantization_config": {"weight_block_size": [64, 64]}})");
    m = refusal([&] { (void)hfModel(q); }, Errc::kUnsupported);
    EXPECT_NE(m.find("weight_block_size [64,64] is not supported"), std::string::npos) << m;
    m = refusal([] { (void)loadHfConfig("/nonexistent/config.json"); }, Errc::kNotFound);
    EXPECT_NE(m.find("cannot open HF config"), std::string::npos) << m;
}

TEST(Derive, ModulesToNotConvertStayBf16) {
    nlohmann::json config = nlohmann::json::parse(R"({"architectures": ["Qwen3ForCausalLM"],
        "vocab_size": 512, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "quantization_config": {"modules_to_not_convert": ["model.layers.1.mlp"]}})");
    const Layout l = deriveFromHf(hfModel(config), "hf-fp8", "q");
    EXPECT_EQ(l.dest("model.layers.1.mlp.down_proj.weight").dtype, DType::kBF16);
    EXPECT_FALSE(l.hasDest("model.layers.1.mlp.down_proj.weight_scale_inv"));
    EXPECT_EQ(l.dest("model.layers.0.mlp.down_proj.weight").dtype, DType::kF8E4M3);
    EXPECT_EQ(l.dest("model.layers.1.self_attn.q_proj.weight").dtype, DType::kF8E4M3);
}

}  // namespace
}  // namespace weightsync::layout
