#pragma once
// One weight version, from trainer rank 0's request until every inference rank serves it, as
// each side lives it. This file and version.cc are the whole step protocol:
//
//   trainer t                                 inference rank p
//   (t = 0) request N  ---------------------->  park readers; paused(p, holds N-1, target)
//   wait: every paused  <--------------------
//   convert, write (checksums: each stage's  (two-sided transports: match the writes)
//   writes complete: staged(t, k)) ------->  (checksums: checksum each staged stage's bytes)
//   flush; done(t)  ------------------------>  wait: every done, check each trainer's
//                                              checksums against what landed; receive;
//                                              landed(p)
//                                              wait: every landed
//                                              apply N: staging -> live, hooks; prepared(p)
//                                              wait: every prepared; propose commit
//   wait: outcome  <-------------------------  outcome: the first proposal wins
//   wait: every resumed  <-------------------  commit: serve N, resumed(p)
//                                              abort: serve N-1 again if the live weights hold
//                                              it (untouched, or swapped back from staging),
//                                              else stay paused
//
// Invariant: no inference rank serves N while another serves N-1 or an aborted N. A rank serves
// N only once the outcome of N is commit; commit is proposed only by a rank that saw every
// inference rank prepared (hooks included), and the outcome is one key written once
// (compare-and-set), so it is the same for everybody. Any failure anywhere before that (an error,
// a participant lost, a deadline) proposes abort with its cause, and the first proposal wins. A
// rank that applied N and cannot learn the outcome (the coordinator is gone) never resumes.
//
// With flip (staging required), a rank does not park its readers at the request: it keeps serving
// N-1 from live while N lands in staging, and parks them only once every rank landed, to make
// staging live (the flip) and run the hooks; it resumes on N after commit, as without flip.
// So the invariant is unchanged: nobody serves N before the outcome is commit, and between the
// landed barrier and commit a rank serves N-1 or is paused. A failure before the landed barrier
// leaves live untouched and never pauses the readers.
//
// The flip is a swap where the rank's memory is the agent's own arena and its readers can follow
// a new address (WeightReaders::canRebind): live and staging trade roles (O(1), no byte moves),
// the readers, hooks and checks are pointed at the new live arena, and an abort after it swaps
// back. Both arenas are registered, and each paused names the one that is staging for that
// version (Paused::target); trainers write there. Otherwise (the caller's tensors, whose
// addresses the engine holds, or readers that cannot follow) the flip copies staging over live
// at memory bandwidth, and an abort after it leaves a rank that only verification can vouch for.
//
// After an aborted version the job may go on with the next one (every version rewrites every
// byte). With a rejoin timeout, an inference rank lost between versions (or in one) may come back
// as a new process with the same engine and rank: the next version waits that long for it in its
// pause barrier, and the trainers import its new memory (a new generation) before writing.

#include "engine/job.h"
#include "engine/metrics.h"
#include "engine/protocol/session.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weightsync::engine::protocol {

/// Points of a version where an observer is called (tests inject faults there; see sim/).
enum class Point {
    kBeforeRequest,  // trainer rank 0 before requesting; other participants waiting for it
    kPaused,         // inference: paused, its memory about to be written
    kConverting,     // trainer: the first stage converted
    kWriting,        // trainer: half of its writes posted
    kDone,           // trainer: done published, waiting for the outcome
    kLanded,         // inference: landed, in the landed barrier
    kApplying,       // inference: staging made live (swapped or copied), before the hooks
    kPrepared,       // inference: prepared, waiting for the outcome
    kResuming,       // the outcome is commit, before serving / before the resume barrier
};
std::string_view pointName(Point point);
/// Parses pointName()'s names; Errc::kInvalidArgument naming the valid ones otherwise.
Point parsePoint(std::string_view name);

/// What a trainer rank does with its data during a version.
class TrainerWork {
  public:
    virtual ~TrainerWork() = default;
    /// Called at each point of the version (no-op by default).
    virtual void at(Point /*point*/, uint64_t /*version*/) {}
    /// Before transfer(): the copy of each inference rank's memory the version is written into
    /// (their paused messages' targets, by roster peer name).
    virtual void targets(const std::vector<std::pair<std::string, uint32_t>> & /*copies*/) {}
    /// Converts and writes the version into every receiver; returns once every write is
    /// complete at its target (fills the metrics' convert/post/drain/bytes/writes).
    virtual void transfer(uint64_t version, PushMetrics &metrics) = 0;
    /// After transfer(): the checksums of the trainer's writes, in plan order, for its done
    /// (empty without checksums).
    virtual std::vector<uint64_t> takeChecksums() { return {}; }
};

/// What an inference rank does with its memory during a version.
class InferenceWork {
  public:
    virtual ~InferenceWork() = default;
    /// Stops / restarts reading the weights (the engine's forward passes).
    virtual void pause() = 0;
    virtual void resume() = 0;
    /// The readers' longest gap between steps since the last call (-1: not measured).
    virtual double takeProbeGapSeconds() { return -1; }
    /// Called at each point of the version (no-op by default).
    virtual void at(Point /*point*/, uint64_t /*version*/) {}
    /// The copy of this rank's memory the version's writes go to (Paused::target): with a swap
    /// flip, the arena that is staging now (0 by default: one copy).
    virtual uint32_t writeTarget() { return 0; }
    /// Two-sided transports (NCCL): while the trainers write, posts this rank's receives
    /// matching their writes and returns once every byte landed, or throws (past `deadline` at
    /// the latest). It must run before the wait for the trainers' done (their flush waits for
    /// these receives). One-sided transports write without the receiver: no-op by default.
    virtual void matchWrites(uint64_t /*version*/, Clock::time_point /*deadline*/) {}

    /// Once every trainer is done, before this rank lands: fetches the version where no
    /// transport wrote it (the filesystem transport checks the checkpoint; no-op by default).
    /// Throws on failure, which aborts the version.
    virtual void receive(uint64_t /*version*/, Clock::time_point /*deadline*/) {}

    /// With checksums, while the trainers still write: trainer `trainer`'s first `writes`
    /// writes of its plan are complete at their targets (WritesLanded), so their bytes here are
    /// final for this version and may be checksummed now, beside the wire (no-op by default).
    /// checkWrites() compares them with the trainer's checksums once its done arrives.
    virtual void writesLanded(uint64_t /*version*/, int /*trainer*/, int64_t /*writes*/) {}
    /// As each trainer's done arrives (in trainer rank order), before this rank announces
    /// landed: checks what that trainer wrote here against the checksums it sent (no-op by
    /// default). Throws Errc::kCorruption naming the tensor, the byte range and the trainer.
    virtual void checkWrites(uint64_t /*version*/, int /*trainer*/, const Done & /*done*/) {}
    /// Makes the landed version live: staging -> live (a swap, or a copy), post-update hooks.
    /// Throws on failure.
    virtual void apply(uint64_t version) = 0;
    /// After apply(): whether it swapped the arenas (a swap flip) rather than copied.
    virtual bool swapped() { return false; }
    /// After a failed version: restores version `held` in the live weights where it can (with
    /// staging: swaps back and re-runs the hooks) and says whether the live weights now hold
    /// exactly `held`. `applied`: apply() was called (and may have changed the live weights).
    struct Restored {
        bool intact = false;
        int64_t mismatched_bytes = -1;  // against `held`, when verification checked it
    };
    virtual Restored restore(uint64_t held, bool applied) = 0;
};

/// Trainer rank `rank` pushes `version` (every trainer rank calls this for every version);
/// `committed` is the last version that committed (inference ranks hold it, or less: a rank
/// that rejoined holds nothing). Returns its metrics once every inference rank serves the
/// version. Throws the version's cause when it was aborted (by this rank or anybody); the job
/// may go on with a later version.
PushMetrics runTrainerVersion(Session &session, const JobSpec &spec, int rank, uint64_t version,
                              uint64_t committed, TrainerWork &work);

struct InferenceVersion {
    bool committed = false;
    double wait_seconds = 0;        // paused until every writer was done and every rank landed
    double hook_seconds = 0;        // applying (staging copy and hooks)
    double check_seconds = 0;       // checksumming what landed (with checksums on)
    double paused_seconds = 0;      // readers parked: from pause() to resume()
    double probe_gap_seconds = -1;  // the readers' longest gap between steps, -1: unmeasured
    bool swapped = false;           // the flip swapped live and staging (else a copy, or none)
};

/// Inference rank `peer` receives `version` while serving `held`. Returns once it serves the
/// version; throws the version's cause when it was aborted, after restoring (and resuming)
/// what it can. `cancelled` (optional) ends the wait for the request.
InferenceVersion runInferenceVersion(Session &session, const JobSpec &spec, const std::string &peer,
                                     uint64_t version, uint64_t held, InferenceWork &work,
                                     const std::atomic<bool> *cancelled = nullptr);

}  // namespace weightsync::engine::protocol
