#pragma once
// Runs the real weightsync binary (WEIGHTSYNC_BIN) with a fresh, empty TMPDIR and collects its
// exit code and output, for tests of what the command line accepts and refuses.

#include "common/subprocess.h"
#include "support/weightsync_bin.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace weightsync::testing {

struct CliResult {
    int code = -1;       // exit code; 128 + n for signal n; -1 if it had to be killed
    std::string output;  // stdout and stderr
    bool wrote = false;  // anything appeared in its TMPDIR
};

/// A scratch directory per test: `tmp` is the child's TMPDIR, `files` holds inputs.
class CliTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        root_ = std::filesystem::path(::testing::TempDir()) /
                (std::string("cli_") + info->test_suite_name() + "_" + info->name());
        std::filesystem::remove_all(root_);
        std::filesystem::create_directories(root_ / "tmp");
        std::filesystem::create_directories(root_ / "files");
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    /// Writes an input file and returns its path.
    std::string file(const std::string &name, const std::string &text) {
        const auto path = root_ / "files" / name;
        std::ofstream(path) << text;
        return path.string();
    }
    [[nodiscard]] std::string scratch() const { return (root_ / "files").string(); }

    /// Runs `weightsync args...`; a hang is reported and killed after 60 s (a guard, not a
    /// timing check: every command here is expected to end at once).
    CliResult run(const std::vector<std::string> &args) {
        std::vector<std::string> argv = {"/usr/bin/env", "TMPDIR=" + (root_ / "tmp").string(),
                                         weightsyncBin()};
        argv.insert(argv.end(), args.begin(), args.end());
        const std::string log = (root_ / "output.log").string();
        CliResult r;
        {
            Child child(argv, log);
            const auto code = child.wait(std::chrono::seconds(60));
            if (code) {
                r.code = *code;
            } else {
                ADD_FAILURE() << "weightsync did not exit within 60 s";
                child.kill(SIGKILL);
            }
        }
        std::ifstream in(log);
        std::stringstream text;
        text << in.rdbuf();
        r.output = text.str();
        r.wrote = !std::filesystem::is_empty(root_ / "tmp");
        return r;
    }

    /// Expects `weightsync args...` to be refused: exit code in [1, 127] (no signal, no core),
    /// an "error" naming `needle`, and nothing written.
    void expectRefused(const std::vector<std::string> &args, const std::string &needle) {
        std::string line;
        for (const std::string &a : args) line += " " + a;
        SCOPED_TRACE("weightsync" + line);
        const CliResult r = run(args);
        EXPECT_GE(r.code, 1) << r.output;
        EXPECT_LT(r.code, 128) << "killed by a signal:\n" << r.output;
        EXPECT_NE(r.output.find(needle), std::string::npos) << "'" << needle << "' not in:\n"
                                                            << r.output;
        EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
        EXPECT_FALSE(r.wrote) << "it wrote into its TMPDIR";
    }

  private:
    std::filesystem::path root_;
};

}  // namespace weightsync::testing
