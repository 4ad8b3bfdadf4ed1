// Bad input on the command line (issues 14 and 19), refused by the real binary: a clear error
// naming the option, field or tensor, an exit code != 0 without a signal, nothing written.

#include "cli_run.h"

#include <nlohmann/json.hpp>

namespace weightsync::testing {
namespace {

using nlohmann::json;

// A small valid layout: a quantized weight and a copied vector.
json layout() {
    return json::parse(R"({
      "name": "toy",
      "sources": [
        {"name": "w", "shape": [256, 128], "dtype": "bf16"},
        {"name": "norm", "shape": [128], "dtype": "bf16"}
      ],
      "destinations": [
        {"name": "w", "shape": [256, 128], "dtype": "fp8_e4m3"},
        {"name": "w_scale", "shape": [2, 1], "dtype": "fp32"},
        {"name": "norm", "shape": [128], "dtype": "bf16"}
      ],
      "rules": [
        {"dest": "w", "sources": ["w"], "kind": "quantize_fp8", "scale": "w_scale"},
        {"dest": "norm", "sources": ["norm"]}
      ]
    })");
}

const std::vector<std::string> kSmall = {"--trainer-ranks",     "1", "--trainer-ep",      "1",
                                         "--inference-engines", "1", "--inference-ranks", "1",
                                         "--inference-ep",      "1"};

class CliRefusals : public CliTest {
  protected:
    /// Both `layout` and `plan` refuse the layout file with `doc`.
    void expectLayoutRefused(const json &doc, const std::string &needle) {
        const std::string path = file("layout.json", doc.dump());
        expectRefused({"layout", "--model", path, "--summary"}, needle);
        std::vector<std::string> plan = {"plan", "--model", path};
        plan.insert(plan.end(), kSmall.begin(), kSmall.end());
        expectRefused(plan, needle);
    }
};

TEST_F(CliRefusals, TheToyLayoutIsAccepted) {
    const std::string path = file("layout.json", layout().dump());
    std::vector<std::string> plan = {"plan", "--model", path};
    plan.insert(plan.end(), kSmall.begin(), kSmall.end());
    const CliResult r = run(plan);
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("every destination byte written exactly once"), std::string::npos);
}

// Issue 19: a zero dimension passed `layout`, then `plan` spun at 100 % CPU forever.
TEST_F(CliRefusals, ZeroDimension) {
    json doc = layout();
    doc["sources"][1]["shape"] = {0};
    doc["destinations"][2]["shape"] = {0};
    expectLayoutRefused(doc,
                        "source 'norm': 'shape'[0] must be an integer in [1, 16777216], got 0");
}

TEST_F(CliRefusals, NegativeDimension) {
    json doc = layout();
    doc["destinations"][0]["shape"] = {256, -128};
    expectLayoutRefused(doc, "destination 'w': 'shape'[1]");
}

// Issue 19: 2^62 dimensions aborted with bad_alloc after 40 s.
TEST_F(CliRefusals, HugeDimension) {
    json doc = layout();
    doc["sources"][0]["shape"] = {int64_t{1} << 62, 128};
    expectLayoutRefused(doc,
                        "source 'w': 'shape'[0] must be an integer in [1, 16777216], got "
                        "4611686018427387904");
}

// Issue 19: a dimension of 512.5 was silently truncated to 512.
TEST_F(CliRefusals, FractionalDimension) {
    json doc = layout();
    doc["sources"][0]["shape"] = {256.5, 128};
    expectLayoutRefused(doc,
                        "source 'w': 'shape'[0] must be an integer in [1, 16777216], got "
                        "256.5");
}

// Issue 19: `num_layers: 1e6` in a 200-byte file grew memory at 0.5 GB/s until the OOM killer.
TEST_F(CliRefusals, MillionLayers) {
    json doc = layout();
    doc["num_layers"] = 1e6;
    doc["sources"][1]["name"] = "norm.{i}";
    expectLayoutRefused(doc, "'num_layers' must be an integer in [0, 4096], got 1000000.0");
    doc["num_layers"] = 1000000;
    expectLayoutRefused(doc, "'num_layers' must be an integer in [0, 4096], got 1000000");
}

// Issue 14: missing fields, unknown dtype, duplicate names.
TEST_F(CliRefusals, MalformedLayouts) {
    json doc = layout();
    doc["sources"][0].erase("dtype");
    expectLayoutRefused(doc, "source 'w': missing field 'dtype'");

    doc = layout();
    doc["destinations"][2]["dtype"] = "int4";
    expectLayoutRefused(doc, "destination 'norm': unknown dtype 'int4'");

    doc = layout();
    doc["sources"].push_back(doc["sources"][1]);
    expectLayoutRefused(doc, "source tensor 'norm' listed twice");

    doc = layout();
    doc["destinations"].push_back(doc["destinations"][0]);
    expectLayoutRefused(doc, "destination tensor 'w' listed twice");

    expectRefused({"layout", "--model", file("bad.json", "{\"sources\": [")}, "not valid JSON");
    expectRefused({"layout", "--model", file("missing.json", "") + ".not-there.json"},
                  "cannot open layout file");
}

// Issue 14: EP that does not divide the experts (glm5-tiny has 8), zero or negative ranks.
// Issue 15: `layout --from-hf CONFIG.json --rules vllm|hf-fp8` derives a layout that `plan`
// accepts; a bad rule set, config or option combination is refused naming it.
constexpr const char *kQwen3Tiny = R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 512,
    "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 64})";

TEST_F(CliRefusals, LayoutFromHfConfig) {
    const std::string config = file("config.json", kQwen3Tiny);
    CliResult r = run({"layout", "--from-hf", config, "--rules", "hf-fp8", "--summary"});
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("Qwen3ForCausalLM/hf-fp8: 25 trainer tensors"), std::string::npos)
        << r.output;
    r = run({"layout", "--from-hf", config, "--rules", "vllm", "--name", "q3"});
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(json::parse(r.output)["name"], "q3");
    // A TP-2 engine: the derived rules split qkv_proj / gate_up_proj per part, o_proj by columns.
    r = run({"plan", "--model", file("derived.json", r.output), "--trainer-ranks", "2",
             "--trainer-ep", "1", "--inference-engines", "1", "--inference-ranks", "2",
             "--inference-ep", "1", "--inference-tp", "2"});
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("every destination byte written exactly once"), std::string::npos)
        << r.output;

    expectRefused({"layout", "--from-hf", config, "--rules", "sglang"},
                  "--rules: sglang not in {hf-fp8,vllm}");
    expectRefused({"layout", "--rules", "vllm"}, "--rules requires --from-hf");
    expectRefused({"layout", "--from-hf", config, "--layers", "3"}, "--layers excludes --from-hf");
    expectRefused({"layout", "--from-hf", scratch() + "/none.json"},
                  "--from-hf: File does not exist");
    expectRefused({"layout", "--from-hf", file("gpt2.json", R"({"architectures": ["GPT2"]})")},
                  "architecture 'GPT2' is not supported");
    expectRefused({"layout", "--from-hf", file("bad.json", "{\"architectures\": [")},
                  "not valid JSON");
    json moe = json::parse(kQwen3Tiny);
    moe["num_hidden_layers"] = 1000000;
    expectRefused({"layout", "--from-hf", file("huge.json", moe.dump())}, "'num_hidden_layers'");
}

TEST_F(CliRefusals, Topologies) {
    expectRefused({"plan", "--trainer-ranks", "3", "--trainer-ep", "3"},
                  "8 experts are not divisible by trainer EP 3");
    expectRefused({"plan", "--inference-ranks", "3", "--inference-ep", "3"},
                  "8 experts are not divisible by inference EP 3");
    expectRefused({"plan", "--trainer-ranks", "4", "--trainer-ep", "3"}, "EP degree 3 must divide");
    expectRefused({"plan", "--trainer-ranks", "0"}, "--trainer-ranks: must be an integer in [1, ");
    expectRefused({"plan", "--trainer-ranks", "-2"}, "--trainer-ranks: must be an integer in [1,");
    expectRefused({"plan", "--inference-ranks", "0"}, "--inference-ranks: must be an integer");
    expectRefused({"plan", "--inference-engines", "-1"}, "--inference-engines: must be an integer");
    expectRefused({"plan", "--inference-tp", "0"}, "--inference-tp: must be an integer");
    expectRefused({"plan", "--trainer-replicas", "0"}, "--trainer-replicas: must be an integer");
    expectRefused({"plan", "--trainer-ranks", "1000000"}, "--trainer-ranks: must be an integer");
    expectRefused({"plan", "--inference-engines", "8192", "--inference-ranks", "8192"},
                  "exceeds the limit of 16384 inference ranks");
    expectRefused({"plan", "--gather-threshold", "-1"}, "--gather-threshold: must be an integer");
    expectRefused({"plan", "--stage-bytes", "1.5"}, "--stage-bytes: must be an integer");
}

TEST_F(CliRefusals, LayerCounts) {
    for (const char *bad : {"0", "-3", "1e6", "512.5", "5000", "many"}) {
        expectRefused({"plan", "--layers", bad}, "--layers: must be an integer in [1, 4096]");
        expectRefused({"layout", "--layers", bad}, "--layers: must be an integer in [1, 4096]");
    }
    expectRefused({"plan", "--model", "nope"}, "unknown model 'nope'");
    expectRefused({"plan", "--model", ""}, "--model: must not be empty");
}

// Issue 19: `--coordinator host:abc` aborted with SIGABRT (an uncaught std::stoi exception).
TEST_F(CliRefusals, CoordinatorAddresses) {
    for (const char *bad :
         {"host:abc", "host", ":29600", "host:0", "host:70000", "host:-1", "host:12x"}) {
        expectRefused({"trainer", "--coordinator", bad, "--rank", "0"},
                      std::string("--coordinator: must be host:port with a port in [1, 65535], "
                                  "got '") +
                          bad + "'");
        expectRefused({"inference", "--coordinator", bad, "--engine", "0", "--rank", "0"},
                      "--coordinator: must be host:port");
    }
    expectRefused({"trainer", "--rank", "-1"}, "--rank: must be an integer");
    expectRefused({"trainer", "--job", "", "--rank", "0"}, "--job: must not be empty");
    expectRefused({"inference", "--engine", "x", "--rank", "0"}, "--engine: must be an integer");
    expectRefused({"coordinator", "--port", "70000"}, "--port: must be an integer in [0, 65535]");
    expectRefused({"coordinator", "--port", "abc"}, "--port: must be an integer");
    expectRefused({"coordinator", "--host", ""}, "--host: must not be empty");
    expectRefused({"coordinator", "--port", "0", "--port-file", scratch() + "/no/such/dir/port"},
                  "--port-file: ");
}

// Issue 16: the nccl transport moves GPU memory in builds with CUDA and NCCL only; the demo says
// so before any process starts (a CPU build: "needs CUDA and NCCL"; with them, "needs CUDA device
// memory" for --device cpu).
TEST_F(CliRefusals, NcclNeedsCuda) {
    expectRefused({"demo", "--transport", "nccl"}, "the nccl transport needs CUDA");
#ifndef WEIGHTSYNC_TEST_HAVE_NCCL
    expectRefused({"demo", "--transport", "nccl", "--device", "cuda"},
                  "the nccl transport needs CUDA and NCCL");
#else
    // NCCL cannot pair two ranks on one GPU: an inference rank on a trainer's GPU is refused.
    expectRefused({"demo", "--transport", "nccl", "--device", "cuda", "--trainer-gpus", "0",
                   "--inference-gpus", "0"},
                  "cannot pair an inference rank with a trainer on one GPU");
#endif
}

// Issue 19: `--log-dir /proc/x` aborted with SIGABRT; `--timeout 0` and `nan` were accepted.
TEST_F(CliRefusals, DemoOptions) {
    expectRefused({"demo", "--log-dir", "/proc/x"}, "--log-dir: cannot create or write '/proc/x'");
    const std::string not_a_dir = file("plain", "x");
    expectRefused({"demo", "--log-dir", not_a_dir}, "exists and is not a directory");
    expectRefused({"demo", "--log-dir", not_a_dir + "/sub"}, "is not a directory");
    for (const char *bad : {"0", "-1", "nan", "NaN", "inf", "-inf", "1e400", "abc", "", "1e9"}) {
        expectRefused({"demo", "--timeout", bad}, "--timeout: must be a number of seconds in (0, ");
    }
    expectRefused({"demo", "--steps", "0"}, "--steps: must be an integer in [1, ");
    expectRefused({"demo", "--steps", "2.5"}, "--steps: must be an integer");
    expectRefused({"demo", "--seed", "-1"}, "--seed: must be an integer in [0, 2^64)");
    expectRefused({"demo", "--transport", "nope"}, "--transport");
    expectRefused({"demo", "--trainer-gpus", "-1"}, "--trainer-gpus: must be an integer");
    expectRefused({"demo", "--inference-gpus", "0", "5000"},
                  "--inference-gpus: must be an integer");
    expectRefused({"demo", "--transport-options", "[1]"},
                  "--transport-options must be a JSON object");
    expectRefused({"demo", "--model", "nope"}, "unknown model 'nope'");
    expectRefused({"demo", "--trainer-ranks", "3", "--trainer-ep", "3"},
                  "not divisible by trainer EP 3");
    json doc = layout();
    doc["sources"][1]["shape"] = {0};
    expectRefused({"demo", "--model", file("zero.json", doc.dump())}, "source 'norm': 'shape'[0]");
}

}  // namespace
}  // namespace weightsync::testing
