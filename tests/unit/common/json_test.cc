// The shared decoding helpers for JSON from other processes and files (common/json.h), and
// base64's one-encoding-per-byte-string rule (found by the base64 fuzz target).

#include "common/json.h"
#include "common/base64.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <string>

namespace weightsync {
namespace {

using nlohmann::json;
using weightsync::testing::thrownBy;

std::string nested(size_t depth, const std::string &inner = "") {
    return std::string(depth, '[') + inner + std::string(depth, ']');
}

std::string messageOf(const std::function<void()> &fn) {
    const auto thrown = thrownBy(fn);
    return thrown ? thrown->message : std::string();
}

TEST(CommonJson, NestingUpTo64LevelsParsesAndDeeperIsRefusedBeforeParsing) {
    EXPECT_EQ(parseJson(nested(64, "1"), "x").dump(), nested(64, "1"));
    const auto deep = thrownBy([] { parseJson(nested(65), "the spec"); });
    ASSERT_TRUE(deep);
    EXPECT_EQ(deep->code, Errc::kProtocol);
    EXPECT_NE(deep->message.find("the spec: JSON nested deeper than 64 levels (at byte 64 of 130)"),
              std::string::npos)
        << deep->message;
    // A million levels: refused from the text, no stack is spent on it.
    EXPECT_NE(messageOf([] { parseJson(nested(1000000), "x"); }).find("nested deeper"),
              std::string::npos);
    EXPECT_NE(messageOf([] {
                  parseJson(R"({"a":{"b":{)" + nested(63) + "}}}", "x");
              }).find("at byte 72 of 140"),
              std::string::npos);
}

TEST(CommonJson, BracketsInsideStringsDoNotCount) {
    const std::string text = R"({"k": ")" + std::string(500, '[') + R"(\"[[[", "n": [1]})";
    EXPECT_EQ(parseJson(text, "x").at("n"), json::array({1}));
}

TEST(CommonJson, InvalidTextNamesWhatAndTakesTheCallersCode) {
    const auto bad =
        thrownBy([] { parseJson("{\"a\":", "layout file 'x.json'", Errc::kInvalidArgument); });
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->code, Errc::kInvalidArgument);
    EXPECT_NE(bad->message.find("layout file 'x.json': not valid JSON (5 bytes)"),
              std::string::npos)
        << bad->message;
}

TEST(CommonJson, DepthOfAParsedValueIsCheckedWithoutRecursion) {
    json deep = 1;
    for (int i = 0; i < 100000; ++i) deep = json::array({std::move(deep)});
    EXPECT_NE(
        messageOf([&] { checkJsonDepth(deep, "options"); }).find("options: JSON nested deeper"),
        std::string::npos);
    checkJsonDepth(json::parse(nested(64)), "ok");
}

TEST(CommonJson, FloatsAreRefusedWhereOnlyIntegersBelong) {
    checkNoFloats(json::parse(R"({"a":[1,-2,{"b":18446744073709551615}],"c":"1.5"})"), "doc");
    EXPECT_NE(messageOf([] {
                  checkNoFloats(json::parse(R"({"a":[1,{"b":1e300}]})"), "doc");
              }).find("doc: 1e+300 is not an integer"),
              std::string::npos);
}

TEST(CommonJson, IntegersAreCheckedNotConverted) {
    EXPECT_EQ(jsonInteger<int>(json(-7), "n"), -7);
    EXPECT_EQ(jsonInteger<uint64_t>(json::parse("18446744073709551615"), "n"), UINT64_MAX);
    EXPECT_EQ(jsonInteger<int64_t>(json(INT64_MIN), "n"), INT64_MIN);
    for (const char *bad : {"1.5", "1e300", "\"3\"", "null", "true"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(thrownBy([&] { jsonInteger<int64_t>(json::parse(bad), "n"); })->code,
                  Errc::kProtocol);
    }
    EXPECT_NE(messageOf([] {
                  jsonInteger<int>(json(int64_t{1} << 32), "ranks");
              }).find("ranks: 4294967296 is out of range"),
              std::string::npos);
    EXPECT_TRUE(thrownBy([] { jsonInteger<uint32_t>(json(-1), "region"); }));
    EXPECT_TRUE(thrownBy([] { jsonInteger<int64_t>(json::parse("9223372036854775808"), "n"); }));
}

TEST(CommonBase64, EveryByteStringHasOneEncoding) {
    EXPECT_EQ(decodeBase64("Zg=="), "f");
    EXPECT_EQ(decodeBase64("Zm8="), "fo");
    // Found by the base64 fuzz target: non-zero bits below the last byte were ignored.
    for (const char *other : {"Ze==", "Zh==", "Zm9=", "Zm/="}) {
        SCOPED_TRACE(other);
        const auto thrown = thrownBy([&] { decodeBase64(other); });
        ASSERT_TRUE(thrown);
        EXPECT_EQ(thrown->code, Errc::kInvalidArgument);
        EXPECT_NE(thrown->message.find("non-zero padding bits"), std::string::npos);
    }
}

}  // namespace
}  // namespace weightsync
