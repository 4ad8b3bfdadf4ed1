// The checksum campaign (issue 18, sim/integrity_campaign.h): clean versions and versions with
// one injected fault (a flipped bit in one write, or one write silently lost), shuffled, through
// in-process agents over UCX shared memory with staging and checksums on. Prints the counts and
// writes them with the command that reproduces them.
//
//   build/bench/e2e/bench_integrity [--faults 1000] [--clean 1000] [--seed 1] [--stage-bytes N]
//                                   [--json-out FILE]

#include "sim/integrity_campaign.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace weightsync;

int main(int argc, char **argv) {
    sim::CampaignOptions o;
    o.faults = 1000;
    o.clean = 1000;
    std::string json_out;
    bool no_verify = false;
    CLI::App app{"Checksum campaign: injected faults must all be detected, clean versions never"};
    app.add_option("--faults", o.faults, "faulted versions")->check(CLI::Range(0, 100000));
    app.add_option("--clean", o.clean, "clean versions")->check(CLI::Range(0, 100000));
    app.add_option("--seed", o.seed, "schedule seed");
    app.add_option("--model", o.model, "model (a small one: every version is verified)");
    app.add_option("--stage-bytes", o.stage_bytes,
                   "pipeline stage bytes (receivers check each stage as it lands)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
    app.add_flag("--no-verify", no_verify, "skip the byte-for-byte check of committed versions");
    app.add_option("--json-out", json_out, "write the counts and the command here");
    CLI11_PARSE(app, argc, argv);
    o.verify = !no_verify;
    o.progress = [](uint64_t v, const std::string &what) {
        if (v % 100 == 0) fmt::print("version {}: {}\n", v, what);
    };
    const sim::CampaignResult r = sim::runIntegrityCampaign(o);
    fmt::print("{:<34} {:>8}\n", "versions (after a clean warm-up)", r.versions);
    fmt::print("{:<34} {:>8}  ({} bit flips, {} lost writes)\n", "faults injected", r.faults,
               r.bit_flips, r.lost_writes);
    fmt::print("{:<34} {:>8}  ({:.2f} %)\n", "detected", r.detected,
               r.faults ? 100.0 * r.detected / r.faults : 100.0);
    fmt::print("{:<34} {:>8}\n", "named the exact write", r.named_exactly);
    fmt::print("{:<34} {:>8}  ({} harmless: every byte correct)\n", "missed", r.missed,
               r.missed_harmless);
    fmt::print("{:<34} {:>8}\n", "clean versions", r.clean);
    fmt::print("{:<34} {:>8}\n", "false alarms", r.false_alarms);
    fmt::print("{:<34} {:>8}\n", "committed versions verified", r.verified);
    fmt::print("{:<34} {:>8}\n", "failed, previous version kept", r.previous_kept);
    fmt::print("{:<34} {:>8.1f}\n", "seconds", r.seconds);
    for (const std::string &e : r.examples) fmt::print("example: {}\n", e);
    for (const std::string &p : r.problems) fmt::print("PROBLEM: {}\n", p);
    if (!json_out.empty()) {
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
        std::ofstream(json_out) << nlohmann::json{{"benchmark", "integrity_campaign"},
                                                  {"command", cmd},
                                                  {"model", o.model},
                                                  {"seed", o.seed},
                                                  {"stage_bytes", o.stage_bytes},
                                                  {"versions", r.versions},
                                                  {"faults", r.faults},
                                                  {"bit_flips", r.bit_flips},
                                                  {"lost_writes", r.lost_writes},
                                                  {"detected", r.detected},
                                                  {"named_exactly", r.named_exactly},
                                                  {"missed", r.missed},
                                                  {"missed_harmless", r.missed_harmless},
                                                  {"clean", r.clean},
                                                  {"false_alarms", r.false_alarms},
                                                  {"committed_clean", r.committed_clean},
                                                  {"verified", r.verified},
                                                  {"mismatched_versions", r.mismatched_versions},
                                                  {"previous_kept", r.previous_kept},
                                                  {"examples", r.examples},
                                                  {"problems", r.problems},
                                                  {"seconds", r.seconds}}
                                       .dump(2)
                                << "\n";
    }
    const bool ok =
        r.problems.empty() && r.detected + r.missed_harmless == r.faults && r.false_alarms == 0;
    return ok ? 0 : 1;
}
