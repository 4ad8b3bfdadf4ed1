// End-to-end weight updates between real processes over real UCX (shared memory and tcp): the
// `weightsync demo` launcher starts the coordinator and every agent; each inference rank compares
// every byte with the reference converter after every version.

#include "support/run_demo.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <string>

namespace weightsync {
namespace {

using testing::DemoResult;
using testing::runDemo;

void expectVerified(const std::string &args, int steps) {
    SCOPED_TRACE(args);
    const DemoResult r = runDemo(args + " --steps " + std::to_string(steps));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(r.json.is_object()) << r.output;
    EXPECT_TRUE(r.json.at("verified").get<bool>()) << r.output;
    EXPECT_EQ(r.json.at("mismatched_bytes").get<int64_t>(), 0);
    EXPECT_EQ(r.json.at("steps").get<int>(), steps);
    EXPECT_GT(r.json.at("wire_bytes").get<int64_t>(), 0);
    // Every byte each inference rank holds was checked, every step.
    EXPECT_EQ(r.json.at("checked_bytes").get<int64_t>(), r.json.at("wire_bytes").get<int64_t>());
}

TEST(EndToEnd, SingleTrainerToSingleInferenceRankTwoVersions) {
    expectVerified(
        "--trainer-ranks 1 --trainer-ep 1 --inference-engines 1 --inference-ranks 1 "
        "--inference-ep 1",
        2);
}

TEST(EndToEnd, FsdpTimesEpTrainerToTwoEpEnginesOverSharedMemory) {
    expectVerified("--ucx-tls posix,sysv,self", 3);
}

TEST(EndToEnd, FsdpTimesEpTrainerToTwoEpEnginesOverTcp) {
    expectVerified("--ucx-tls tcp,self", 2);
}

TEST(EndToEnd, HsdpTwoReplicasOnlyOneWrites) {
    expectVerified("--trainer-ranks 4 --trainer-replicas 2 --trainer-ep 2", 2);
}

TEST(EndToEnd, InferenceEngineWithTensorParallelTwo) {
    // Experts TP-split (EP 1) and experts EP-split next to TP 2, with per-shard writes.
    expectVerified(
        "--model glm5-aligned --trainer-ranks 2 --trainer-ep 2 --inference-engines 1 "
        "--inference-ranks 2 --inference-tp 2 --inference-ep 1 --gather-threshold 0",
        2);
    expectVerified(
        "--model glm5-aligned --trainer-ranks 4 --trainer-ep 2 --inference-engines 1 "
        "--inference-ranks 2 --inference-tp 2 --inference-ep 2",
        2);
}

TEST(EndToEnd, SmallPipelineStagesAndTheSerialMode) {
    // Experts and block rows split into many 4 KiB stages, each written as soon as it is
    // converted; then the same job converting everything before writing anything.
    expectVerified("--stage-bytes 4096", 2);
    expectVerified("--stage-bytes 4096 --no-pipeline", 2);
}

TEST(EndToEnd, ChecksumsCheckedStageByStageOverSharedMemoryAndTcp) {
    // Receivers checksum each stage's writes as the trainers' staged notices arrive: direct
    // copies into shared memory, and UCX puts over TCP (marks complete by worker flushes).
    expectVerified("--checksum --stage-bytes 4096 --ucx-tls posix,sysv,self", 2);
    expectVerified("--checksum --stage-bytes 4096 --ucx-tls tcp,self", 2);
}

TEST(EndToEnd, DenseModelAndStagedReceivers) {
    expectVerified(
        "--model qwen3-tiny --trainer-ranks 2 --trainer-ep 1 --inference-ranks 2 "
        "--inference-ep 1 --staging",
        2);
}

TEST(EndToEnd, BadShapeExitsWithClearMessage) {
    const DemoResult r = runDemo("--trainer-ranks 3 --trainer-ep 3");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("not divisible"), std::string::npos) << r.output;
    const DemoResult bad_options = runDemo("--transport-options '[1]'");
    EXPECT_NE(bad_options.exit_code, 0);
    EXPECT_NE(bad_options.output.find("must be a JSON object"), std::string::npos)
        << bad_options.output;
}

TEST(EndToEnd, TransportOptionsReachTheBackends) {
    // The same tcp job as --ucx-tls, spelt as backend options of an auto job.
    expectVerified(R"(--transport-options '{"ucx": {"transports": "tcp,self"}}')", 1);
}

}  // namespace
}  // namespace weightsync
