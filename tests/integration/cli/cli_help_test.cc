// `--help` works for every command and runs nothing (issue 19).

#include "cli_run.h"

namespace weightsync::testing {
namespace {

class CliHelp : public CliTest {};

TEST_F(CliHelp, EveryCommandPrintsItsOptionsAndRunsNothing) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> commands = {
        {{"--help"}, "Subcommands:"},
        {{"plan", "--help"}, "--trainer-ranks"},
        {{"layout", "--help"}, "--summary"},
        {{"coordinator", "--help"}, "--port-file"},
        {{"trainer", "--help"}, "--coordinator"},
        {{"inference", "--help"}, "--fault-die-at-version"},
        {{"demo", "--help"}, "--log-dir"},
        // Help wins over a missing required option.
        {{"inference", "--help"}, "--engine"},
    };
    for (const auto &[args, needle] : commands) {
        std::string line;
        for (const std::string &a : args) line += " " + a;
        SCOPED_TRACE("weightsync" + line);
        const CliResult r = run(args);
        EXPECT_EQ(r.code, 0) << r.output;
        EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("Usage:"), std::string::npos) << r.output;
        // The demo would have started a coordinator and written a log directory.
        EXPECT_EQ(r.output.find("started coordinator"), std::string::npos) << r.output;
        EXPECT_FALSE(r.wrote);
    }
}

TEST_F(CliHelp, NoCommandIsAClearError) {
    const CliResult r = run({});
    EXPECT_GE(r.code, 1);
    EXPECT_LT(r.code, 128);
    EXPECT_NE(r.output.find("A subcommand is required"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace weightsync::testing
