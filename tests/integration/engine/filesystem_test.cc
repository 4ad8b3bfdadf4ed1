// The filesystem transport between real processes: trainers write every version as a
// safetensors checkpoint under a root directory, inference ranks load it, and every rank checks
// every byte against the reference converter. A trainer killed mid-write leaves a directory
// without a manifest that nobody loads; a file corrupted after its manifest is refused by its
// hash; in both cases every receiver keeps the previous version, byte for byte, and nothing hangs.

#include "checkpoint/file_layout.h"
#include "engine/local_job.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "support/run_demo.h"
#include "support/weightsync_bin.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace weightsync::engine {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace keys = protocol::keys;
namespace stdfs = std::filesystem;

/// A fresh directory, removed at the end of the test.
class TempDir {
  public:
    TempDir() {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = stdfs::temp_directory_path() /
                fmt::format("ws-fs-{}-{}-{}", info->name(), ::getpid(), created++);
        stdfs::remove_all(path_);
        stdfs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        stdfs::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    [[nodiscard]] std::string str() const { return path_.string(); }

  private:
    stdfs::path path_;
    static inline int created = 0;  // directories made by this process
};

std::set<std::string> entries(const stdfs::path &dir) {
    std::set<std::string> out;
    for (const auto &e : stdfs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

using testing::DemoResult;
using testing::runDemo;

void expectVerified(const DemoResult &r, int steps) {
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(r.json.is_object()) << r.output;
    EXPECT_TRUE(r.json.at("verified").get<bool>()) << r.output;
    EXPECT_EQ(r.json.at("mismatched_bytes").get<int64_t>(), 0);
    EXPECT_EQ(r.json.at("steps").get<int>(), steps);
    EXPECT_GT(r.json.at("checked_bytes").get<int64_t>(), 0);
}

TEST(Filesystem, DemoFsdpTimesEpIntoTwoEpEnginesKeepsTheLastTwoSteps) {
    const TempDir root;
    // 4 trainer ranks (FSDP 4 = 2 x EP 2) -> 2 engines x 2 ranks (EP 2); several files.
    const DemoResult r = runDemo("--transport filesystem --fs-root " + root.str() +
                                 " --fs-keep 2 --fs-file-bytes 300000 --steps 4");
    expectVerified(r, 4);
    EXPECT_EQ(entries(root.str()), (std::set<std::string>{"step_3", "step_4"}));
    const std::set<std::string> step = entries(stdfs::path(root.str()) / "step_4");
    EXPECT_TRUE(step.count("weightsync-manifest.json"));
    EXPECT_TRUE(step.count("model.safetensors.index.json"));
    EXPECT_TRUE(step.count("model-00001-of-00008.safetensors")) << json(step).dump();
    for (const std::string &name : step) EXPECT_FALSE(name.ends_with(".tmp")) << name;
}

TEST(Filesystem, DemoTensorParallelEnginesInPlaceAndStaged) {
    for (const std::string extra : {"", " --staging"}) {
        SCOPED_TRACE(extra);
        const TempDir root;
        // TP 2 (row and column splits, fused parts, FP8 scale grids) and 2 engines; keep 1.
        const DemoResult r =
            runDemo("--transport filesystem --fs-root " + root.str() +
                    " --fs-keep 1 --model glm5-aligned --trainer-ranks 2 --trainer-ep 1 "
                    "--inference-engines 2 --inference-ranks 2 --inference-tp 2 --inference-ep 1 "
                    "--steps 3" +
                    extra);
        expectVerified(r, 3);
        EXPECT_EQ(entries(root.str()), (std::set<std::string>{"step_3"}));
    }
}

TEST(Filesystem, DemoRefusesAJobWithoutARoot) {
    const DemoResult r = runDemo("--transport filesystem --steps 1");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("--fs-root"), std::string::npos) << r.output;
}

LocalJobOptions fsJob(const std::string &root, int steps) {
    LocalJobOptions o;
    o.spec.model = "glm5-tiny";
    o.spec.mesh = {1, 2, 2};
    o.spec.fleet.engines = {{2, 1, 2, {}}};
    o.spec.steps = steps;
    o.spec.transport = transport::TransportChoice::kFilesystem;
    o.spec.fs_root = root;
    o.spec.fs_file_bytes = 300'000;
    o.spec.step_timeout = 20s;
    o.spec.init_timeout = 20s;
    o.executable = testing::weightsyncBin();
    return o;
}

/// Version 1 committed and verified everywhere; version 2 aborted, with `cause` in its outcome;
/// every inference rank reports that it holds version 1, intact, and serves it.
void expectKeptVersionOne(LocalJob &job, const std::map<std::string, int> &codes,
                          const std::string &cause) {
    for (const auto &[name, code] : codes) EXPECT_NE(code, -1) << name << " hung";
    const auto outcome = job.store().get(keys::outcome(2));
    ASSERT_TRUE(outcome);
    const auto o = protocol::decode<protocol::Outcome>(*outcome, 2, "outcome");
    EXPECT_FALSE(o.commit);
    EXPECT_NE(o.reason.find(cause), std::string::npos) << o.reason;
    for (const std::string peer : {"e0r0", "e0r1"}) {
        SCOPED_TRACE(peer);
        const auto v1 = job.store().get(keys::verified(1, peer));
        ASSERT_TRUE(v1);
        EXPECT_TRUE(json::parse(*v1).at("verified").get<bool>());
        EXPECT_FALSE(job.store().get(keys::resumed(2, peer)));
        const auto aborted = job.store().get(keys::aborted(2, protocol::inferenceName(peer)));
        ASSERT_TRUE(aborted) << "the rank did not report";
        const auto a = protocol::decode<protocol::Aborted>(*aborted, 2, "aborted");
        EXPECT_EQ(a.held, 1u);
        EXPECT_TRUE(a.intact);
        EXPECT_TRUE(a.serving);
        // Verification compared the live weights with version 1 where the rank had paused.
        if (job.store().get(keys::paused(2, peer))) {
            EXPECT_EQ(a.mismatched_bytes_vs_held, 0);
        }
    }
}

TEST(Filesystem, TrainerKilledMidWriteLeavesNoManifestAndReceiversKeepTheirVersion) {
    const TempDir root;
    LocalJobOptions o = fsJob(root.str(), 3);
    o.extra_args["trainer1"] = {"--fault", "writing@2:kill"};
    LocalJob job(o);
    job.start();
    const auto start = std::chrono::steady_clock::now();
    const auto codes = job.supervise(60s);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << "nothing may wait out its timeout";
    EXPECT_EQ(codes.at("trainer1"), 128 + 9);
    expectKeptVersionOne(job, codes, "trainer1");
    // The torn version: temporary files, never renamed, and no manifest.
    const std::set<std::string> step2 = entries(stdfs::path(root.str()) / "step_2");
    EXPECT_FALSE(step2.count("weightsync-manifest.json")) << json(step2).dump();
    for (const auto &f : checkpoint::fileLayout(jobLayout(o.spec), o.spec.fs_file_bytes).files) {
        EXPECT_TRUE(step2.count(f.name + ".tmp")) << json(step2).dump();
    }
    EXPECT_TRUE(entries(stdfs::path(root.str()) / "step_1").count("weightsync-manifest.json"));
}

TEST(Filesystem, FileCorruptedAfterItsManifestIsRefusedByItsHash) {
    const TempDir root;
    LocalJobOptions o = fsJob(root.str(), 2);
    // Both receivers pause for version 2, then wait while the test corrupts a file.
    for (const std::string peer : {"inference-e0r0", "inference-e0r1"}) {
        o.extra_args[peer] = {"--fault", "paused@2:stall=4"};
    }
    LocalJob job(o);
    job.start();
    const auto files = checkpoint::fileLayout(jobLayout(o.spec), o.spec.fs_file_bytes).files;
    ASSERT_GT(files.size(), 2u);
    const stdfs::path file = stdfs::path(root.str()) / "step_2" / files[1].name;
    std::atomic<bool> flipped{false};
    std::thread corrupt([&] {
        const stdfs::path manifest = file.parent_path() / "weightsync-manifest.json";
        const auto until = std::chrono::steady_clock::now() + 30s;
        while (!stdfs::exists(manifest) && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(5ms);
        }
        if (!stdfs::exists(manifest)) return;
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        const auto at = static_cast<std::streamoff>(stdfs::file_size(file) / 2);
        f.seekg(at);
        char c = 0;
        f.get(c);
        f.seekp(at);
        f.put(static_cast<char>(c ^ 0x40));
        flipped = f.good();
    });
    const auto codes = job.supervise(60s);
    corrupt.join();
    ASSERT_TRUE(flipped.load()) << "the manifest of version 2 never appeared";
    expectKeptVersionOne(job, codes, files[1].name + "' have XXH3");
    EXPECT_EQ(codes.at("trainer0"), codes.at("trainer1"));
}

}  // namespace
}  // namespace weightsync::engine
