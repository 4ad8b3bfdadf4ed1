#pragma once
// One struct per message of the step protocol, each with its JSON codec. Every message carries
// the weight version it belongs to and decode() checks it against the version of the key it was
// read from, so a message can never pair with another version's step.

#include "checkpoint/ranges.h"
#include "common/error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace weightsync::engine::protocol {

/// Trainer rank 0 asks for version N (also written as `latest`).
struct Request {
    uint64_t version = 0;
};

/// An inference rank is ready for the version's writes (without flip it stopped reading
/// weights); `held` is the version it serves (N-1). `target`: the copy of its memory the writes
/// go to (MemoryRecord::copies; always 0 with one copy). With a swap flip its two arenas trade
/// roles at every committed version and stay put after a failed one, so no parity rule can
/// tell: the rank says it per version.
struct Paused {
    uint64_t version = 0;
    uint64_t held = 0;
    uint32_t target = 0;
};

/// A trainer's writes of the version are complete at their targets.
struct Done {
    uint64_t version = 0;
    int64_t bytes = 0;
    int64_t writes = 0;
    /// With checksums on (JobSpec::checksum): the checksum of each of the trainer's writes, in
    /// the order of its plan (kernels/checksum/checksum.h); empty otherwise. On the wire: base64
    /// of the little-endian 64-bit values.
    std::vector<uint64_t> checksums;
};

/// With checksums: trainer t's first `writes` writes of its plan (its stages so far) are
/// complete at their targets, while later ones may still fly; receivers may checksum them now.
struct WritesLanded {
    uint64_t version = 0;
    int64_t writes = 0;
};

/// Every byte of the version is in an inference rank's memory.
struct Landed {
    uint64_t version = 0;
};

/// An inference rank applied the version (staging copied, hooks ran) and waits for the outcome.
struct Prepared {
    uint64_t version = 0;
    double wait_seconds = 0;  // from the pause until every writer was done
    double hook_seconds = 0;  // applying: staging copy and post-update hooks
};

/// The version's one decision: commit (every inference rank prepared it) or abort (the first
/// failure anybody saw, with its cause).
struct Outcome {
    uint64_t version = 0;
    bool commit = false;
    std::string by;  // who decided
    Errc code = Errc::kInternal;
    std::string reason;
};

/// An inference rank serves the version.
struct Resumed {
    uint64_t version = 0;
    double wait_seconds = 0;
    double hook_seconds = 0;
    double paused_seconds = 0;      // its readers parked (without flip: from the request on)
    double probe_gap_seconds = -1;  // the readers' longest gap between steps, -1 if unmeasured
    bool swapped = false;           // flip: by swapping live and staging (else by a copy)
};

/// A participant gave up on the version: what it holds now and whether it serves again.
struct Aborted {
    uint64_t version = 0;
    uint64_t held = 0;                      // the version its weights hold (inference ranks)
    bool intact = false;                    // its weights are exactly version `held`
    bool serving = false;                   // it resumed serving `held`
    int64_t mismatched_bytes_vs_held = -1;  // when verification checked it, else -1
    std::string error;
};

/// Filesystem transport: the hashes of a trainer rank's writes into the checkpoint
/// (checkpoint/ranges.h), for trainer rank 0's manifest.
struct CheckpointRanges {
    uint64_t version = 0;
    std::vector<checkpoint::HashedRange> ranges;
};

/// An inference rank compared every byte of the version with the reference conversion.
struct Verified {
    uint64_t version = 0;
    bool verified = false;
    int64_t checked_bytes = 0;
    int64_t mismatched_bytes = 0;
    double verify_seconds = 0;
};

/// JSON text of a message.
template <typename Message>
std::string encode(const Message &message);

/// Parses a message read from `key`; Errc::kProtocol when it is malformed or belongs to another
/// version than `version`.
template <typename Message>
Message decode(const std::string &text, uint64_t version, const std::string &key);

}  // namespace weightsync::engine::protocol
