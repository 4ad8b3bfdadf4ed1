#pragma once
// The checksum campaign (issue 18): a job of in-process agents (threads of this process, a TCP
// coordinator, UCX shared memory, staging, checksums on) pushes a random mix of clean versions
// and versions in which the fault-injecting backend (transport/fault/) flips one random bit of
// one random write, or silently loses one random write, of one random trainer rank. Every
// faulted version must fail everywhere with a checksum mismatch naming that write's tensor,
// byte range and trainer rank; every clean version must commit; every committed version is
// checked byte for byte against the reference conversion. Used by bench/e2e/bench_integrity
// (1000 + 1000 versions) and a small test.

#include "planner/topology.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace weightsync::sim {

struct CampaignOptions {
    int faults = 10;  // faulted versions
    int clean = 10;   // clean versions, shuffled among the faulted ones
    uint64_t seed = 1;
    std::string model = "glm5-tiny";
    planner::TrainerMesh mesh{1, 2, 1};
    std::vector<planner::EngineSpec> engines{{2, 1, 2, {}}};
    /// Pipeline stages (JobSpec planner.stage_bytes): small, so that each version has several
    /// and receivers checksum the early ones from the trainers' staged notices, beside the wire.
    int64_t stage_bytes = int64_t{64} << 10;
    bool verify = true;  // compare every committed version with the reference conversion
    /// Called after every version with its number and a one-line summary (progress output).
    std::function<void(uint64_t, const std::string &)> progress;
};

struct CampaignResult {
    int versions = 0;  // counted (after a clean warm-up version 1)
    int faults = 0, bit_flips = 0, lost_writes = 0, clean = 0;
    int detected = 0;         // faulted versions aborted with a checksum mismatch
    int named_exactly = 0;    // ... whose error names the faulted write (tensor, range, trainer)
    int missed = 0;           // faulted versions that committed anyway
    int missed_harmless = 0;  // ... with every byte correct (a lost write whose old bytes equal
                              // the new ones; verification proves it)
    int false_alarms = 0;     // clean versions that failed
    int committed_clean = 0;
    int verified = 0;             // committed versions verified on every rank
    int mismatched_versions = 0;  // committed versions with any byte wrong somewhere
    int previous_kept = 0;        // failed versions after which every rank served the previous one
    std::vector<std::string> examples;  // a few detection messages
    std::vector<std::string> problems;  // anything unexpected (empty when all is well)
    double seconds = 0;
};

CampaignResult runIntegrityCampaign(const CampaignOptions &options);

}  // namespace weightsync::sim
