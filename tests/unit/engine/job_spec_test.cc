// JobSpec::fromJson reads what every agent takes from the coordinator: any value out of range,
// of the wrong type or not exact is refused with an Error(kInvalidArgument) naming the field.

#include "common/error.h"
#include "engine/job.h"
#include "layout/derive.h"
#include "layout/json_layout.h"
#include "layout/registry.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <limits>

namespace weightsync::engine {
namespace {

using nlohmann::json;

json goodSpec() {
    JobSpec s;
    s.mesh = {1, 4, 2};
    s.fleet.engines = {{2, 1, 2, {}}, {2, 1, 2, {}}};
    s.steps = 3;
    return s.toJson();
}

void expectRefused(const json &doc, const std::vector<std::string> &needles) {
    SCOPED_TRACE(doc.dump());
    const auto thrown = testing::thrownBy([&] { (void)JobSpec::fromJson(doc); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kInvalidArgument) << thrown->message;
    for (const std::string &needle : needles) {
        EXPECT_NE(thrown->message.find(needle), std::string::npos)
            << "'" << needle << "' not in: " << thrown->message;
    }
}

/// goodSpec() with `key` set to `value` (a JSON pointer such as "/mesh/fsdp").
json with(const std::string &pointer, const json &value) {
    json doc = goodSpec();
    doc[json::json_pointer(pointer)] = value;
    return doc;
}

json without(const std::string &key) {
    json doc = goodSpec();
    doc.erase(key);
    return doc;
}

TEST(JobSpecRefusals, AGoodSpecRoundTrips) {
    const JobSpec s = JobSpec::fromJson(goodSpec());
    EXPECT_EQ(s.toJson(), goodSpec());
    EXPECT_EQ(JobSpec::parse(goodSpec().dump()).toJson(), goodSpec());
}

TEST(JobSpecRefusals, DeviceAndTransportAreEnumsSpeltAsStrings) {
    for (const std::string transport : {"auto", "ucx", "cuda_ipc", "inproc"}) {
        for (const std::string device : {"cpu", "cuda"}) {
            json doc = with("/device", device);
            doc["transport"] = transport;
            const JobSpec s = JobSpec::fromJson(doc);
            EXPECT_EQ(transport::choiceName(s.transport), transport);
            EXPECT_EQ(deviceName(s.device), device);
            EXPECT_EQ(s.toJson().at("transport"), transport);
            EXPECT_EQ(s.toJson().at("device"), device);
        }
    }
    EXPECT_EQ(JobSpec::fromJson(without("device")).device, Device::kCpu);
    EXPECT_EQ(parseTransport("auto"), transport::TransportChoice::kAuto);
    EXPECT_EQ(parseDevice("cuda"), Device::kCuda);
    EXPECT_EQ(testing::codeOf([] { (void)parseDevice("gpu"); }), Errc::kInvalidArgument);
    EXPECT_EQ(testing::codeOf([] { (void)parseTransport("UCX"); }), Errc::kInvalidArgument);
}

TEST(JobSpecRefusals, Timeouts) {
    for (const json &bad :
         {json(0), json(-5000), json(1.5), json("300000"), json(nullptr), json(int64_t{1} << 62)}) {
        expectRefused(with("/step_timeout_ms", bad), {"job spec: 'step_timeout_ms'"});
        expectRefused(with("/init_timeout_ms", bad), {"job spec: 'init_timeout_ms'"});
    }
}

TEST(JobSpecRefusals, Counts) {
    expectRefused(with("/steps", 0), {"'steps'", "got 0"});
    expectRefused(with("/steps", 2.5), {"'steps'", "got 2.5"});
    expectRefused(with("/steps", int64_t{1} << 40), {"'steps'"});
    expectRefused(with("/seed", -1), {"'seed'", "got -1"});
    expectRefused(with("/seed", 1.0), {"'seed'"});
    expectRefused(with("/layers", 0), {"'layers'"});
    expectRefused(with("/layers", 1000000), {"'layers'", "4096"});
    expectRefused(with("/gather_threshold_bytes", -1), {"'gather_threshold_bytes'"});
    expectRefused(with("/stage_bytes", -1), {"'stage_bytes'"});
    expectRefused(with("/stage_bytes", std::numeric_limits<uint64_t>::max()), {"'stage_bytes'"});
}

TEST(JobSpecRefusals, MeshAndFleet) {
    expectRefused(with("/mesh/fsdp", 0), {"job spec: mesh: 'fsdp'"});
    expectRefused(with("/mesh/replicas", -1), {"job spec: mesh: 'replicas'"});
    expectRefused(with("/mesh/ep", 3), {"EP degree 3 must divide"});
    expectRefused(with("/mesh/fsdp", 1000000), {"job spec: mesh: 'fsdp'", "16384"});
    expectRefused(with("/mesh", 4), {"job spec: mesh must be a JSON object"});
    expectRefused(with("/engines", json::array()), {"no engines"});
    expectRefused(with("/engines/0/ranks", 0), {"job spec: engines[0]: 'ranks'"});
    expectRefused(with("/engines/1/tp", -2), {"job spec: engines[1]: 'tp'"});
    expectRefused(with("/engines/1/ep", 3), {"engine 1: EP must be 1"});
    expectRefused(with("/engines/0/expert_maps", {{0, 1}, {2, 2.5}}),
                  {"'expert_maps'[1][1]", "2.5"});
    expectRefused(with("/engines/0/expert_maps", {{0, 1}, {2, 2}}), {"lists an expert twice"});
}

TEST(JobSpecRefusals, Names) {
    expectRefused(with("/model", ""), {"'model'"});
    expectRefused(with("/model", 5), {"'model' must be a string"});
    expectRefused(with("/transport", "carrier-pigeon"), {"'transport'", "carrier-pigeon"});
    expectRefused(with("/transport_options", "posix"), {"'transport_options'"});
    expectRefused(with("/device", "tpu"), {"'device'", "tpu"});
    expectRefused(with("/trainer_gpus", json::array()), {"'trainer_gpus'"});
    expectRefused(with("/inference_gpus", {0, -1}), {"'inference_gpus'[1]"});
    expectRefused(with("/verify", 1), {"'verify' must be true or false"});
}

TEST(JobSpecRefusals, MissingFieldsAndBadDocuments) {
    for (const char *key : {"model", "mesh", "engines", "seed", "steps", "transport", "verify",
                            "init_timeout_ms", "step_timeout_ms", "gather_threshold_bytes"}) {
        expectRefused(without(key), {std::string("missing field '") + key + "'"});
    }
    expectRefused(json::array(), {"job spec must be a JSON object"});
    testing::expectThrows(Errc::kInvalidArgument, [] { (void)JobSpec::parse("{\"model\": "); });
    testing::expectThrows(Errc::kInvalidArgument, [] {
        (void)JobSpec::parse(std::string(100000, '[') + std::string(100000, ']'));
    });
}

TEST(JobSpecRefusals, ValidateChecksASpecBuiltInCode) {
    JobSpec s = JobSpec::fromJson(goodSpec());
    s.step_timeout = std::chrono::milliseconds(0);
    testing::expectThrows(Errc::kInvalidArgument, [&] { s.validate(); });
    s = JobSpec::fromJson(goodSpec());
    s.steps = -1;
    testing::expectThrows(Errc::kInvalidArgument, [&] { s.validate(); });
    s = JobSpec::fromJson(goodSpec());
    s.fleet.engines[0].ranks = 0;
    testing::expectThrows(Errc::kInvalidArgument, [&] { s.validate(); });
    s = JobSpec::fromJson(goodSpec());
    s.flip_copy = true;  // how to flip, without flip
    testing::expectThrows(Errc::kInvalidArgument, [&] { s.validate(); });
    s.staging = s.flip = true;
    s.validate();
    EXPECT_TRUE(JobSpec::fromJson(s.toJson()).flip_copy);
}

// Issue 15: a job carries its own (e.g. derived) layout document, and every agent's jobLayout
// is that layout.
TEST(JobSpec, CarriesItsOwnLayout) {
    const layout::Layout builtin = layout::resolveLayout("qwen3-tiny");
    const layout::Layout derived = layout::canonicalOrder(builtin, "derived-q3");
    JobSpec s = JobSpec::fromJson(goodSpec());
    s.mesh = {1, 1, 1};
    s.fleet.engines = {{1, 1, 1, {}}};
    EXPECT_EQ(jobLayout(s).fingerprint(), layout::resolveLayout(s.model).fingerprint());
    s.model = derived.name();
    s.layout = layout::toJson(derived);
    const JobSpec back = JobSpec::parse(s.toJson().dump());
    EXPECT_EQ(jobLayout(back).fingerprint(), derived.fingerprint());
    EXPECT_EQ(back.model, "derived-q3");

    json doc = back.toJson();
    doc["layers"] = 2;
    expectRefused(doc, {"'layers' does not apply to a job that carries its own layout"});
    doc = back.toJson();
    doc["layout"] = "qwen3-tiny";
    expectRefused(doc, {"'layout' must be a layout document"});
    JobSpec bad = back;
    bad.layout["rules"][0]["sources"] = json::array({"nope"});
    const auto thrown = testing::thrownBy([&] { (void)jobLayout(bad); });
    ASSERT_TRUE(thrown);
    EXPECT_NE(thrown->message.find("job spec: 'layout'"), std::string::npos) << thrown->message;
    EXPECT_NE(thrown->message.find("'nope'"), std::string::npos) << thrown->message;
}

}  // namespace
}  // namespace weightsync::engine
