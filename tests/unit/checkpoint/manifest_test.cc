// The manifest: round trip, and strict decoding (a bad manifest is corruption, never loaded).

#include "checkpoint/manifest.h"
#include "common/error.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace weightsync::checkpoint {
namespace {

Manifest sample() {
    return {7,
            "glm5-tiny",
            "0123456789abcdef",
            {{"model-00001-of-00001.safetensors",
              1234,
              {{0, 1000, 0xfedcba9876543210ULL}, {1000, 234, 2}}},
             {"model.safetensors.index.json", 56, {{0, 56, 1}}}}};
}

TEST(Manifest, RoundTrips) {
    const Manifest m = sample();
    const Manifest back = Manifest::decode(m.encode(), "m.json");
    EXPECT_EQ(back.version, 7u);
    EXPECT_EQ(back.layout, "glm5-tiny");
    EXPECT_EQ(back.fingerprint, m.fingerprint);
    EXPECT_EQ(back.files, m.files);
    EXPECT_EQ(back.file("model.safetensors.index.json", "m.json").bytes, 56);
    EXPECT_EQ(hashHex(1), "0000000000000001");
}

TEST(Manifest, RefusesWhatIsNotAManifest) {
    auto j = nlohmann::json::parse(sample().encode());
    const auto refused = [](const nlohmann::json &doc, const std::string &needle) {
        try {
            (void)Manifest::decode(doc.dump(), "dir/m.json");
            ADD_FAILURE() << "accepted " << doc.dump();
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), Errc::kCorruption) << e.what();
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("dir/m.json"), std::string::npos) << e.what();
        }
    };
    auto bad = j;
    bad["format"] = "other/1";
    refused(bad, "format");
    bad = j;
    bad["files"][0]["xxh3_ranges"][0][2] = "123";
    refused(bad, "hex digits");
    bad = j;
    bad["files"][0]["xxh3_ranges"][1][2] = "zzzzzzzzzzzzzzzz";
    refused(bad, "hex digits");
    bad = j;
    bad["files"][0]["xxh3_ranges"][1] = 7;
    refused(bad, "xxh3_ranges");
    bad = j;  // the file's last 234 bytes are not covered
    bad["files"][0]["xxh3_ranges"].erase(1);
    refused(bad, "cover 1000 bytes of 1234");
    bad = j;
    bad["files"][0]["xxh3_ranges"][1][0] = 999;
    refused(bad, "overlap");
    bad = j;
    bad["files"][0]["xxh3_ranges"][1][0] = 1001;
    refused(bad, "gap");
    bad = j;
    bad["files"][0]["xxh3_ranges"][1][1] = 235;
    refused(bad, "past the file");
    bad = j;
    bad["files"][0]["name"] = "../escape";
    refused(bad, "plain file name");
    bad = j;
    bad["files"][0]["bytes"] = -1;
    refused(bad, "bytes");
    bad = j;
    bad["extra"] = 1;
    refused(bad, "extra");
    bad = j;
    bad.erase("version");
    refused(bad, "version");
    EXPECT_THROW((void)Manifest::decode("{ torn", "m.json"), Error);
    EXPECT_THROW((void)sample().file("missing.safetensors", "m.json"), Error);
}

}  // namespace
}  // namespace weightsync::checkpoint
