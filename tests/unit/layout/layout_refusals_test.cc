// Hostile and malformed layouts (issues 14 and 19): each is refused at once with an
// Error(kInvalidArgument) naming the tensor and the field, before anything is expanded or
// allocated. None may hang, exhaust memory, abort, or be silently "fixed" (512.5 -> 512).

#include "common/error.h"
#include "layout/glm5.h"
#include "layout/json_fields.h"
#include "layout/json_layout.h"
#include "layout/limits.h"
#include "layout/registry.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace weightsync::layout {
namespace {

using nlohmann::json;

// One quantized weight fed by two sources, one expert tensor, one copied vector.
json toy() {
    return json::parse(R"({
      "format": "weightsync-layout/1",
      "name": "toy",
      "num_layers": 2,
      "sources": [
        {"name": "l.{i}.q", "shape": [256, 128], "dtype": "bf16"},
        {"name": "l.{i}.k", "shape": [128, 128], "dtype": "bf16"},
        {"name": "l.{i}.experts", "shape": [4, 128, 128], "dtype": "bf16", "expert_dim": 0},
        {"name": "norm", "shape": [128], "dtype": "bf16"}
      ],
      "destinations": [
        {"name": "l.{i}.qk", "shape": [384, 128], "dtype": "fp8_e4m3"},
        {"name": "l.{i}.qk_scale", "shape": [3, 1], "dtype": "fp32"},
        {"name": "l.{i}.experts", "shape": [4, 128, 128], "dtype": "bf16"},
        {"name": "norm", "shape": [128], "dtype": "fp32"}
      ],
      "rules": [
        {"dest": "l.{i}.qk", "sources": ["l.{i}.q", "l.{i}.k"], "kind": "quantize_fp8",
         "scale": "l.{i}.qk_scale", "tp": "rows"},
        {"dest": "l.{i}.experts", "sources": ["l.{i}.experts"], "expert": true},
        {"dest": "norm", "sources": ["norm"]}
      ]
    })");
}

/// Expects layoutFromJson(doc) to fail with kInvalidArgument and a message holding every needle.
void expectRefused(const json &doc, const std::vector<std::string> &needles) {
    const auto thrown = testing::thrownBy([&] { (void)layoutFromJson(doc); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInvalidArgument) << thrown->message;
    for (const std::string &needle : needles) {
        EXPECT_NE(thrown->message.find(needle), std::string::npos)
            << "'" << needle << "' not in: " << thrown->message;
    }
}

TEST(LayoutRefusals, TheToyLayoutIsValid) {
    const Layout l = layoutFromJson(toy());
    EXPECT_EQ(l.sources().size(), 7u);
    EXPECT_EQ(l.dests().size(), 7u);
}

// Issue 19: a zero dimension passed `layout`, then `plan` spun forever in the validator.
TEST(LayoutRefusals, ZeroAndNegativeDimensions) {
    json doc = toy();
    doc["sources"][3]["shape"] = {0};
    doc["destinations"][3]["shape"] = {0};
    expectRefused(doc, {"source 'norm'", "'shape'[0]", "got 0"});

    doc = toy();
    doc["sources"][1]["shape"] = {128, -128};
    expectRefused(doc, {"source 'l.{i}.k'", "'shape'[1]", "got -128"});

    doc = toy();
    doc["destinations"][2]["shape"] = {0, 128, 128};
    expectRefused(doc, {"destination 'l.{i}.experts'", "'shape'[0]"});
}

// Issue 19: 2^62 dimensions aborted with bad_alloc after 40 s; 2^64 - 1 must not wrap either.
TEST(LayoutRefusals, HugeDimensions) {
    json doc = toy();
    doc["sources"][3]["shape"] = {int64_t{1} << 62};
    expectRefused(doc, {"source 'norm'", "'shape'[0]", "4611686018427387904"});

    doc = toy();
    doc["sources"][3]["shape"] = {std::numeric_limits<uint64_t>::max()};
    expectRefused(doc, {"source 'norm'", "18446744073709551615"});

    // Each dimension is within limits, the tensor is not (2^24 x 2^24 x 16 bf16 = 8 TiB).
    doc = toy();
    doc["sources"][2]["shape"] = {16, limits::kMaxDim, limits::kMaxDim};
    expectRefused(doc, {"'l.0.experts'", "larger than the limit"});
}

// Issue 19: 512.5 was silently truncated to 512.
TEST(LayoutRefusals, NumbersMustBeExactIntegers) {
    json doc = toy();
    doc["sources"][0]["shape"] = {256.5, 128};
    expectRefused(doc, {"source 'l.{i}.q'", "'shape'[0]", "256.5"});

    doc = toy();
    doc["sources"][0]["shape"] = {"256", 128};
    expectRefused(doc, {"source 'l.{i}.q'", "'shape'[0]"});

    doc = toy();
    doc["sources"][2]["expert_dim"] = 0.0;
    expectRefused(doc, {"source 'l.{i}.experts'", "'expert_dim'"});

    doc = toy();
    doc["num_layers"] = 2.0;
    expectRefused(doc, {"'num_layers'", "2.0"});
}

// Issue 19: `num_layers: 1e6` in a 200-byte file grew memory at 0.5 GB/s until the OOM killer.
TEST(LayoutRefusals, LayerCountsAreLimitedBeforeExpansion) {
    json doc = toy();
    doc["num_layers"] = 1e6;  // a JSON float
    expectRefused(doc, {"'num_layers'", "1000000.0"});

    doc = toy();
    doc["num_layers"] = 1000000;  // an integer, over the limit
    expectRefused(doc, {"'num_layers'", "[0, 4096]", "1000000"});

    doc = toy();
    doc["sources"][0]["layers"] = {0, int64_t{1} << 40};
    expectRefused(doc, {"source 'l.{i}.q'", "'layers'[1]"});

    // Every range within limits, the sum of the expansion is not: refused before it is built.
    doc = toy();
    doc["num_layers"] = limits::kMaxLayers;
    for (int i = 0; i < 64; ++i) {
        doc["sources"].push_back(
            {{"name", "x" + std::to_string(i) + ".{i}"}, {"shape", {8}}, {"dtype", "bf16"}});
    }
    expectRefused(doc, {"'sources' expands to more than 262144"});

    // A rule counts once per source it names: 4096 layers x 100 sources.
    doc = toy();
    doc["num_layers"] = limits::kMaxLayers;
    doc["rules"][0]["sources"] = std::vector<std::string>(100, "l.{i}.q");
    expectRefused(doc, {"'rules' expands to more than 262144"});
}

TEST(LayoutRefusals, MissingFieldsAreNamed) {
    for (const char *field : {"name", "shape", "dtype"}) {
        SCOPED_TRACE(field);
        json doc = toy();
        doc["sources"][1].erase(field);
        expectRefused(doc, {std::string("missing field '") + field + "'",
                            std::string(field) == "name" ? "sources[1]" : "source 'l.{i}.k'"});
    }
    json doc = toy();
    doc["rules"][0].erase("scale");
    expectRefused(doc, {"rule for 'l.{i}.qk'", "missing field 'scale'"});

    doc = toy();
    doc["rules"][1].erase("sources");
    expectRefused(doc, {"rule for 'l.{i}.experts'", "missing field 'sources'"});

    doc = toy();
    doc.erase("destinations");
    expectRefused(doc, {"layout", "missing field 'destinations'"});

    // A templated entry with neither num_layers nor its own layers.
    doc = toy();
    doc.erase("num_layers");
    expectRefused(doc, {"source 'l.{i}.q'", "needs num_layers or layers"});
}

TEST(LayoutRefusals, WrongTypesAndUnknownFields) {
    json doc = toy();
    doc["sources"][0]["name"] = 7;
    expectRefused(doc, {"sources[0]", "'name' must be a string"});

    doc = toy();
    doc["rules"][1]["expert"] = "yes";
    expectRefused(doc, {"rule for 'l.{i}.experts'", "'expert' must be true or false"});

    doc = toy();
    doc["sources"][0]["shape"] = 256;
    expectRefused(doc, {"source 'l.{i}.q'", "'shape' must be a list"});

    doc = toy();
    doc["sources"] = json::object();
    expectRefused(doc, {"'sources' must be a list"});

    // A misspelt optional field would otherwise be ignored ("expert_dims" -> not an expert).
    doc = toy();
    doc["sources"][2]["expert_dims"] = 0;
    expectRefused(doc, {"source 'l.{i}.experts'", "unknown field 'expert_dims'"});

    doc = toy();
    doc["rules"][2]["scale"] = "norm_scale";
    expectRefused(doc, {"rule for 'norm'", "'scale' is only for quantize_fp8"});

    expectRefused(json::array(), {"layout must be a JSON object"});
}

TEST(LayoutRefusals, UnknownDtypeNamesTheTensor) {
    json doc = toy();
    doc["destinations"][3]["dtype"] = "int4";
    expectRefused(doc, {"destination 'norm'", "unknown dtype 'int4'"});
}

TEST(LayoutRefusals, DuplicateNames) {
    json doc = toy();
    doc["sources"].push_back(doc["sources"][3]);
    expectRefused(doc, {"source tensor 'norm' listed twice"});

    doc = toy();
    doc["destinations"].push_back(doc["destinations"][3]);
    expectRefused(doc, {"destination tensor 'norm' listed twice"});

    // Two templates that expand to the same name.
    doc = toy();
    doc["sources"].push_back({{"name", "l.{i}.q"}, {"shape", {256, 128}}, {"dtype", "bf16"}});
    expectRefused(doc, {"source tensor 'l.0.q' listed twice"});

    doc = toy();
    doc["rules"].push_back(doc["rules"][2]);
    expectRefused(doc, {"'norm'"});
}

TEST(LayoutRefusals, ExpertCountsAreLimited) {
    json doc = toy();
    const int64_t experts = limits::kMaxExperts + 1;
    doc["sources"][2]["shape"] = {experts, 128, 128};
    doc["destinations"][2]["shape"] = {experts, 128, 128};
    expectRefused(doc, {"'l.0.experts'", "4097 experts"});
}

TEST(LayoutRefusals, LayoutBytesAreLimited) {
    // 17 tensors of 1 TiB each on either side: each within its limit, the layout is not.
    json doc = {
        {"sources", json::array()}, {"destinations", json::array()}, {"rules", json::array()}};
    for (int i = 0; i < 17; ++i) {
        const std::string name = "t" + std::to_string(i);
        const json t = {
            {"name", name}, {"shape", {int64_t{1} << 20, int64_t{1} << 19}}, {"dtype", "bf16"}};
        doc["sources"].push_back(t);
        doc["destinations"].push_back(t);
        doc["rules"].push_back({{"dest", name}, {"sources", {name}}});
    }
    expectRefused(doc, {"exceed the limit of 17592186044416 bytes"});
}

// The C++ API (the built-in layouts, Python's layout_from_json) meets the same checks.
TEST(LayoutRefusals, DirectConstructionAndBuiltinLayerCounts) {
    testing::expectThrows(Errc::kInvalidArgument, [] {
        (void)Layout("x", {{"a", {0, 128}, DType::kBF16, 0, -1}}, {{"a", {0, 128}, DType::kBF16}},
                     {{"a", "", {"a"}, ConvKind::kCopy, TpSplit::kReplicated, false}});
    });
    for (const int64_t layers : {int64_t{0}, int64_t{-1}, int64_t{1000000}}) {
        SCOPED_TRACE(layers);
        const auto thrown = testing::thrownBy([&] { (void)resolveLayout("glm5-tiny", layers); });
        ASSERT_TRUE(thrown);
        EXPECT_NE(thrown->message.find("--layers must be in [1, 4096]"), std::string::npos)
            << thrown->message;
    }
    Glm5Config c = glm5Config("glm5-tiny");
    c.layers = 1'000'000;
    testing::expectThrows(Errc::kInvalidArgument, [&] { (void)glm5Layout(c); });
}

class LayoutFile : public ::testing::Test {
  protected:
    void TearDown() override { std::filesystem::remove(path_); }
    std::string write(const std::string &text) {
        std::ofstream(path_) << text;
        return path_;
    }
    std::string path_ = ::testing::TempDir() + "/layout_refusals_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json";
};

TEST_F(LayoutFile, DeepNestingIsRefused) {
    const std::string path =
        write("{\"sources\": " + std::string(100000, '[') + std::string(100000, ']') + "}");
    const auto thrown = testing::thrownBy([&] { (void)loadLayoutFile(path); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInvalidArgument);
    EXPECT_NE(thrown->message.find("nested deeper than 32"), std::string::npos) << thrown->message;
}

TEST_F(LayoutFile, OversizedAndSpecialFilesAreNotRead) {
    { std::ofstream out(path_); }
    std::filesystem::resize_file(path_, limits::kMaxLayoutFileBytes + 1);  // sparse: no bytes
    auto thrown = testing::thrownBy([&] { (void)loadLayoutFile(path_); });
    ASSERT_TRUE(thrown);
    EXPECT_NE(thrown->message.find("larger than the limit"), std::string::npos) << thrown->message;
    // A device would feed bytes forever.
    thrown = testing::thrownBy([] { (void)resolveLayout("file:/dev/zero"); });
    ASSERT_TRUE(thrown);
    EXPECT_NE(thrown->message.find("not a regular file"), std::string::npos) << thrown->message;
}

TEST_F(LayoutFile, ErrorsNameTheFileAndTheTensor) {
    json doc = toy();
    doc["sources"][3]["shape"] = {512.5};
    const std::string path = write(doc.dump());
    const auto thrown = testing::thrownBy([&] { (void)resolveLayout(path); });
    ASSERT_TRUE(thrown);
    EXPECT_NE(thrown->message.find(path), std::string::npos) << thrown->message;
    EXPECT_NE(thrown->message.find("source 'norm': 'shape'[0]"), std::string::npos)
        << thrown->message;
}

TEST(JsonFields, IntegersAreExact) {
    EXPECT_EQ(jsonfields::integer(json(5), "x", 0, 10), 5);
    EXPECT_EQ(jsonfields::unsignedInteger(json(std::numeric_limits<uint64_t>::max()), "x"),
              std::numeric_limits<uint64_t>::max());
    for (const json &bad : {json(5.0), json(5.5), json(11), json(-1), json("5"), json(nullptr),
                            json(true), json(std::numeric_limits<uint64_t>::max())}) {
        SCOPED_TRACE(bad.dump());
        testing::expectThrows(Errc::kInvalidArgument,
                              [&] { (void)jsonfields::integer(bad, "x", 0, 10); });
    }
    testing::expectThrows(Errc::kInvalidArgument,
                          [] { (void)jsonfields::unsignedInteger(json(-1), "x"); });
    // nlohmann reads 0 as an unsigned integer: the lower bound still applies.
    testing::expectThrows(Errc::kInvalidArgument,
                          [] { (void)jsonfields::integer(json(0), "x", 1, 10); });
}

}  // namespace
}  // namespace weightsync::layout
