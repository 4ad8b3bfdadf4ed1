#include "common/base64.h"
#include "support/expect_error.h"
#include "transport/transport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <limits>

namespace weightsync::transport {
namespace {

using weightsync::testing::codeOf;

RemoteDescriptor sample() {
    RemoteDescriptor d;
    d.backend = "ucx";
    d.address = 0x7f0012345000ULL;
    d.length = 4096;
    d.kind = MemoryKind::kHost;
    d.device = -1;
    d.generation = std::numeric_limits<uint64_t>::max();
    for (int i = 0; i < 256; ++i) d.key += static_cast<char>(i);
    return d;
}

TEST(TransportBase64, RoundTripsEveryLength) {
    std::string bytes;
    for (int n = 0; n < 40; ++n) {
        EXPECT_EQ(decodeBase64(encodeBase64(bytes)), bytes) << "length " << n;
        bytes += static_cast<char>(0xf0 + n % 16);
    }
    EXPECT_EQ(encodeBase64("foob"), "Zm9vYg==");
    EXPECT_EQ(encodeBase64("fooba"), "Zm9vYmE=");
    EXPECT_EQ(encodeBase64("foobar"), "Zm9vYmFy");
}

TEST(TransportBase64, RejectsMalformedText) {
    EXPECT_EQ(codeOf([] { decodeBase64("abc"); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { decodeBase64("ab$d"); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { decodeBase64("a=bc"); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { decodeBase64("ab==abcd"); }), Errc::kInvalidArgument);
}

TEST(TransportDescriptor, RoundTripsThroughJsonText) {
    const RemoteDescriptor d = sample();
    const auto parsed = RemoteDescriptor::fromJson(nlohmann::json::parse(d.toJson().dump()));
    EXPECT_EQ(parsed.backend, d.backend);
    EXPECT_EQ(parsed.address, d.address);
    EXPECT_EQ(parsed.length, d.length);
    EXPECT_EQ(parsed.kind, d.kind);
    EXPECT_EQ(parsed.device, d.device);
    EXPECT_EQ(parsed.generation, d.generation);
    EXPECT_EQ(parsed.key, d.key);
}

TEST(TransportDescriptor, RoundTripsCudaRegions) {
    RemoteDescriptor d = sample();
    d.kind = MemoryKind::kCuda;
    d.device = 3;
    d.key.clear();
    const auto json = d.toJson();
    EXPECT_EQ(json.at("kind"), "cuda");
    const auto parsed = RemoteDescriptor::fromJson(json);
    EXPECT_EQ(parsed.kind, MemoryKind::kCuda);
    EXPECT_EQ(parsed.device, 3);
    EXPECT_TRUE(parsed.key.empty());
}

TEST(TransportDescriptor, RejectsMissingOrMistypedFields) {
    for (const char *field :
         {"v", "backend", "address", "length", "kind", "device", "generation", "key"}) {
        auto json = sample().toJson();
        json.erase(field);
        EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument)
            << field;
    }
    auto json = sample().toJson();
    json["address"] = "0x1000";
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    json = sample().toJson();
    json["length"] = -5;
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    json = sample().toJson();
    json["kind"] = "tpu";
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    json = sample().toJson();
    json["key"] = "not base64!";
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    EXPECT_EQ(codeOf([] { RemoteDescriptor::fromJson(nlohmann::json::array()); }),
              Errc::kInvalidArgument);
}

TEST(TransportDescriptor, RejectsInconsistentValues) {
    auto json = sample().toJson();
    json["device"] = 0;  // host memory carries no device
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kMismatch);
    json = sample().toJson();
    json["kind"] = "cuda";  // ... and CUDA memory needs one
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kMismatch);
    json = sample().toJson();
    json["v"] = 2;
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kMismatch);
    json = sample().toJson();
    json["length"] = 0;
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    json = sample().toJson();
    json["address"] = std::numeric_limits<uint64_t>::max();
    EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
}

TEST(TransportDescriptor, RefusesFloatsInIntegerFields) {
    // Found by the descriptor fuzz target: {"v": 1.1e301, ...} converted a float to int (UB).
    for (const char *field : {"v", "device"}) {
        SCOPED_TRACE(field);
        auto json = sample().toJson();
        json[field] = 1.1e301;
        EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
        json[field] = 1.0;
        EXPECT_EQ(codeOf([&] { RemoteDescriptor::fromJson(json); }), Errc::kInvalidArgument);
    }
}

}  // namespace
}  // namespace weightsync::transport
