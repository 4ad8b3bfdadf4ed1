// What the engine decodes from the store (the job spec, an inference rank's hello and memory
// record) refuses malformed numbers and deep nesting with a typed error: regressions of the
// fuzz targets job_spec and agent_messages, and of issue 14's deep-nesting probe.

#include "engine/job.h"
#include "engine/messages.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace weightsync::engine {
namespace {

using nlohmann::json;
using weightsync::testing::thrownBy;

json hello() {
    return json::parse(R"({"fingerprint":"be41c66bd1e839aa",
        "peer":{"engine":0,"expert_parallel":true,"experts":[0,1],"name":"e0r0","rank":0,"tp":1,
                "tp_rank":0},
        "params":[{"bytes":512,"dtype":"bf16","name":"norm.weight","shape":[256]}]})");
}

json memory() {
    return json::parse(R"({"generation":7,"copies":1,"host":"vm/boot","endpoints":[],
        "tensors":[{"bytes":512,"chunks":[[0,0,512]],"name":"norm.weight"}]})");
}

void expectProtocolError(const std::function<void()> &fn, const std::string &part) {
    const auto thrown = thrownBy(fn);
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kProtocol) << thrown->message;
    EXPECT_NE(thrown->message.find(part), std::string::npos) << thrown->message;
}

TEST(EngineDecoders, HelloAndMemoryRecordDecode) {
    const InferenceHello h = InferenceHello::fromJson(hello());
    EXPECT_EQ(h.peer.experts, (std::vector<int64_t>{0, 1}));
    EXPECT_EQ(h.params.at(0).shape, Shape{256});
    EXPECT_EQ(InferenceHello::fromJson(h.toJson()).toJson(), h.toJson());
    const MemoryRecord r = MemoryRecord::fromJson(memory());
    EXPECT_EQ(r.tensors.at(0).chunks.at(0).bytes, 512U);
}

TEST(EngineDecoders, HelloRefusesFloatsAndOutOfRangeIntegers) {
    json h = hello();
    h["peer"]["rank"] = 1e300;  // was a float-to-int conversion (undefined behaviour)
    expectProtocolError([&] { InferenceHello::fromJson(h); }, "rank: expected an integer");
    h = hello();
    h["peer"]["tp"] = int64_t{1} << 32;  // was silently truncated to 0
    expectProtocolError([&] { InferenceHello::fromJson(h); }, "tp: 4294967296 is out of range");
    h = hello();
    h["params"][0]["shape"] = json::array({256.5});
    expectProtocolError([&] { InferenceHello::fromJson(h); }, "shape: expected an integer");
}

TEST(EngineDecoders, MemoryRecordRefusesBadChunks) {
    json r = memory();
    r["tensors"][0]["chunks"][0][0] = (int64_t{1} << 32) + 1;  // region index was truncated to 1
    expectProtocolError([&] { MemoryRecord::fromJson(r); }, "chunk region");
    r = memory();
    r["tensors"][0]["chunks"][0] = json::array({0, 0});
    expectProtocolError([&] { MemoryRecord::fromJson(r); }, "expected [region, offset, bytes]");
    r = memory();
    r["generation"] = -1;
    expectProtocolError([&] { MemoryRecord::fromJson(r); }, "generation: -1 is out of range");
    r = memory();
    r["copies"] = -1;
    expectProtocolError([&] { MemoryRecord::fromJson(r); }, "copies: -1 is out of range");
}

// A rank that flips publishes two copies of its tensors (live and staging arenas): every copy's
// region must hold every chunk, and the regions must split evenly into the copies.
TEST(EngineDecoders, MemoryRecordCopiesAreChecked) {
    const std::vector<planner::LocalTensor> expected = {{"norm.weight", {256}, DType::kBF16, 512}};
    MemoryRecord r = MemoryRecord::fromJson(memory());
    r.copies = 2;
    const transport::RemoteDescriptor region{"ucx", 4096, 512, transport::MemoryKind::kHost,
                                             -1,    7,    "k"};
    r.endpoints.push_back({"ucx", "addr", {region, region}});
    validateMemory(expected, r, "e0r0");  // two copies, one region each
    EXPECT_EQ(MemoryRecord::fromJson(r.toJson()).copies, 2U);

    r.endpoints.front().regions[1].length = 256;  // copy 1 too short for the tensor
    auto thrown = thrownBy([&] { validateMemory(expected, r, "e0r0"); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kMismatch);
    EXPECT_NE(thrown->message.find("(copy 1)"), std::string::npos) << thrown->message;

    r.endpoints.front().regions.pop_back();  // one region cannot hold two copies
    thrown = thrownBy([&] { validateMemory(expected, r, "e0r0"); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kMismatch);
    EXPECT_NE(thrown->message.find("do not split into its 2 copies"), std::string::npos)
        << thrown->message;
}

TEST(EngineDecoders, JobSpecRefusesFloatsAndDeepOptions) {
    JobSpec spec;
    spec.transport = transport::TransportChoice::kUcx;
    spec.mesh = {1, 4, 2};
    spec.fleet.engines.push_back({2, 1, 2, {}});
    json j = spec.toJson();
    EXPECT_EQ(JobSpec::fromJson(j).toJson(), j);
    // A job spec is the launcher's input: bad values are invalid arguments, naming the field.
    const auto expect_refused = [](const std::function<void()> &fn, const std::string &part) {
        const auto thrown = thrownBy(fn);
        ASSERT_TRUE(thrown);
        EXPECT_EQ(thrown->code, Errc::kInvalidArgument) << thrown->message;
        EXPECT_NE(thrown->message.find(part), std::string::npos) << thrown->message;
    };
    j["mesh"]["fsdp"] = 1e300;
    expect_refused([&] { JobSpec::fromJson(j); }, "'fsdp' must be an integer");
    // transport_options is copied whole: a deep one (parsed without limits) must not recurse.
    json deep = 1;
    for (int i = 0; i < 100000; ++i) deep = json::array({std::move(deep)});
    j = spec.toJson();
    j["transport_options"] = std::move(deep);
    expect_refused([&] { JobSpec::fromJson(j); }, "job spec: JSON nested deeper than 32");
}

}  // namespace
}  // namespace weightsync::engine
