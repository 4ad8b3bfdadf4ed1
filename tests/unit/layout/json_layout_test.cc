#include "layout/json_layout.h"
#include "common/error.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace weightsync::layout {
namespace {

using nlohmann::json;

TEST(JsonLayout, RoundTripsEveryBuiltin) {
    for (const std::string &name : builtinLayoutNames()) {
        SCOPED_TRACE(name);
        const Layout l = resolveLayout(name, 3);
        const Layout back = layoutFromJson(toJson(l));
        EXPECT_EQ(back.fingerprint(), l.fingerprint());
        EXPECT_EQ(back.dests().size(), l.dests().size());
    }
}

json templated() {
    return json::parse(R"({
      "format": "weightsync-layout/1",
      "name": "toy",
      "num_layers": 3,
      "sources": [
        {"name": "layers.{i}.q.weight", "shape": [256, 128], "dtype": "bf16"},
        {"name": "layers.{i}.k.weight", "shape": [128, 128], "dtype": "bf16"},
        {"name": "layers.{i}.norm", "shape": [128], "dtype": "bf16", "layers": [1, 3]},
        {"name": "head", "shape": [64, 128], "dtype": "fp32"}
      ],
      "destinations": [
        {"name": "layers.{i}.qk.weight", "shape": [384, 128], "dtype": "fp8_e4m3"},
        {"name": "layers.{i}.qk.weight_scale_inv", "shape": [3, 1], "dtype": "fp32"},
        {"name": "layers.{i}.norm", "shape": [128], "dtype": "fp32", "layers": [1, 3]},
        {"name": "head", "shape": [64, 128], "dtype": "bf16"}
      ],
      "rules": [
        {"dest": "layers.{i}.qk.weight", "sources": ["layers.{i}.q.weight", "layers.{i}.k.weight"],
         "kind": "quantize_fp8", "scale": "layers.{i}.qk.weight_scale_inv", "tp": "rows"},
        {"dest": "layers.{i}.norm", "sources": ["layers.{i}.norm"], "layers": [1, 3]},
        {"dest": "head", "sources": ["head"], "tp": "rows"}
      ]
    })");
}

TEST(JsonLayout, ExpandsLayerTemplates) {
    const Layout l = layoutFromJson(templated());
    EXPECT_EQ(l.name(), "toy");
    EXPECT_EQ(l.sources().size(), 3u + 3u + 2u + 1u);
    EXPECT_TRUE(l.hasDest("layers.2.qk.weight"));
    EXPECT_FALSE(l.hasDest("layers.0.norm"));
    EXPECT_TRUE(l.hasDest("layers.1.norm"));
    const Conversion &c = l.conversions().front();
    EXPECT_EQ(c.dest, "layers.0.qk.weight");
    EXPECT_EQ(c.sources, (std::vector<std::string>{"layers.0.q.weight", "layers.0.k.weight"}));
    EXPECT_EQ(c.kind, ConvKind::kQuantizeFp8);
    EXPECT_EQ(c.tp, TpSplit::kRows);
}

void expectError(const json &doc, const std::string &needle) {
    try {
        (void)layoutFromJson(doc);
        FAIL() << "expected an error mentioning " << needle;
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(JsonLayout, ErrorsNameTheTensor) {
    json doc = templated();
    doc["rules"][0]["sources"][1] = "layers.{i}.kk.weight";
    expectError(doc, "layers.0.kk.weight");

    doc = templated();
    doc["destinations"][0]["shape"] = {400, 128};
    expectError(doc, "layers.0.qk.weight");

    doc = templated();
    doc["destinations"][1]["shape"] = {4, 1};
    expectError(doc, "layers.0.qk.weight_scale_inv");

    doc = templated();
    doc["sources"][3]["dtype"] = "int4";
    expectError(doc, "int4");

    doc = templated();
    doc["rules"].erase(2);
    expectError(doc, "head");

    doc = templated();
    doc["rules"][2]["tp"] = "diagonal";
    expectError(doc, "diagonal");

    doc = templated();
    doc["sources"].erase(0);
    expectError(doc, "layers.0.q.weight");
}

TEST(JsonLayout, LoadsFilesWithClearErrors) {
    const std::string path = ::testing::TempDir() + "/toy_layout.json";
    {
        std::ofstream out(path);
        out << templated().dump(2);
    }
    EXPECT_EQ(loadLayoutFile(path).name(), "toy");
    EXPECT_EQ(resolveLayout(path).name(), "toy");
    {
        std::ofstream out(path);
        out << "{ not json";
    }
    try {
        (void)loadLayoutFile(path);
        FAIL();
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    }
    std::remove(path.c_str());
    EXPECT_THROW((void)loadLayoutFile(path), Error);
}

TEST(JsonLayout, RefusesTemplatesThatExpandWithoutBound) {
    // Found by the layout_json fuzz target: a 1 KB file with "num_layers": 24294967296 expanded
    // every templated entry 24 billion times.
    json doc = templated();
    doc["num_layers"] = int64_t{24294967296};
    try {
        (void)layoutFromJson(doc);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("'num_layers' must be an integer in [0, 4096], got "
                                             "24294967296"),
                  std::string::npos)
            << e.what();
    }
}

TEST(JsonLayout, RefusesFloatsAndDeepNesting) {
    json doc = templated();
    doc["sources"][0]["shape"][0] = 1e300;  // would be a float-to-int conversion (UB)
    try {
        (void)layoutFromJson(doc);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("must be an integer in [1, 16777216], got 1e+300"),
                  std::string::npos)
            << e.what();
    }
    const std::string path = ::testing::TempDir() + "/deep_layout.json";
    {
        std::ofstream out(path);
        out << std::string(100000, '[') << std::string(100000, ']');
    }
    try {
        (void)loadLayoutFile(path);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("nested deeper than 32"), std::string::npos)
            << e.what();
    }
    std::remove(path.c_str());
}

}  // namespace
}  // namespace weightsync::layout
