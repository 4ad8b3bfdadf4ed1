#pragma once
// Runs `weightsync demo --json --timeout 60 <args>` as a real process and keeps its exit code,
// its output and the JSON result it prints last (for the end-to-end tests).

#include "support/weightsync_bin.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <string>

namespace weightsync::testing {

struct DemoResult {
    int exit_code = -1;
    nlohmann::json json;  // the result line; discarded (not an object) when none was printed
    std::string output;   // stdout and stderr
};

inline DemoResult runDemo(const std::string &args) {
    const std::string cmd = weightsyncBin() + " demo --json --timeout 60 " + args + " 2>&1";
    DemoResult r;
    FILE *pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr) return r;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) r.output += buf.data();
    const int status = ::pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const size_t last = r.output.rfind("\n{");
    if (last != std::string::npos) {
        r.json = nlohmann::json::parse(r.output.substr(last + 1), nullptr, false);
    }
    return r;
}

}  // namespace weightsync::testing
