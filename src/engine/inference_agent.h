#pragma once
// One inference rank: allocates its destination tensors once (or adopts the caller's, e.g. a torch
// module's parameters), registers them once, and per version parks its readers, waits for every
// writer, runs the post-update hooks, resumes, and (when the job verifies) checks every byte.

#include "control/store.h"
#include "engine/agent_metrics.h"
#include "engine/checkpoint_io.h"
#include "engine/checksum.h"
#include "engine/compute.h"
#include "engine/hooks.h"
#include "engine/job.h"
#include "engine/protocol/version.h"
#include "engine/serving.h"
#include "engine/staged_tensors.h"
#include "layout/layout.h"
#include "planner/geometry.h"
#include "planner/receives.h"
#include "transport/registry.h"
#include "transport/transport.h"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

namespace weightsync::engine {

/// Outcome of one version on this rank.
struct StepResult {
    uint64_t version = 0;
    bool committed = false;  // runs the new version
    bool verified = false;   // every byte as pushed (when the job verifies)
    int64_t checked_bytes = 0;
    int64_t mismatched_bytes = 0;
    double wait_seconds = 0;  // paused until every writer was done
    double hook_seconds = 0;
    double check_seconds = 0;       // checksumming what landed (JobSpec::checksum)
    double paused_seconds = 0;      // the readers were parked
    double probe_gap_seconds = -1;  // the readers' longest gap between steps (-1: unmeasured)
    double verify_seconds = 0;
    bool swapped = false;  // flip: the arenas swapped roles (else staging was copied over live)
};

/// A destination tensor owned by the caller (e.g. a torch parameter), registered in place: the
/// caller keeps the memory alive and in place for the agent's lifetime. (It is never copied: a
/// registered copy would receive the writes while the live tensor stays stale.)
struct ExternalTensor {
    std::string name;
    Shape shape;
    DType dtype = DType::kBF16;
    std::byte *data = nullptr;
    transport::MemoryKind kind = transport::MemoryKind::kHost;
    int device = -1;  // CUDA device ordinal, -1 for host memory
};

struct InferenceOptions {
    /// The rank's destination tensors, provided by the caller in planner::localTensors(layout,
    /// peer) order with the same names, shapes and dtypes; init() checks them and registers each
    /// as its own region. With JobSpec::staging it registers a staging arena instead and makes
    /// each version live in them by a copy (flip) or a trade (engine/staged_tensors.h). Empty =
    /// the agent allocates and registers one arena of its own.
    std::vector<ExternalTensor> tensors;
    /// Readers of the live tensors, parked during every update (none by default: e.g. the
    /// caller's engine pauses its own forward passes).
    ReadersFactory readers;
    /// Required when the job verifies (JobSpec::verify): checks every version's bytes after the
    /// rank resumed, and after a failed version whether the live weights still hold the previous
    /// one. sim/synthetic_check.h checks against the synthetic weights trainers push.
    std::shared_ptr<WeightCheck> check;
    /// Runs after a version landed and the built-in hooks ran, before the rank resumes (e.g. to
    /// recompute derived tensors). If it throws, the version fails on every rank (see
    /// engine/protocol/version.h) and serveStep rethrows.
    std::function<void(uint64_t version)> after_update;
};

class InferenceAgent {
  public:
    InferenceAgent(std::shared_ptr<control::Store> store, int engine, int rank,
                   InferenceOptions options = {});
    ~InferenceAgent();

    void init();
    /// Serves one update (engine/protocol/version.h); throws the version's cause when it failed
    /// anywhere, after restoring what it can (it then serves the previous version again only if
    /// its live weights hold it exactly).
    StepResult serveStep(uint64_t version);
    /// The version serveStep should take next: after the last one it took part in, and for a
    /// rank that (re)joined a running job, the one in flight (or the next one) when it joined.
    [[nodiscard]] uint64_t nextVersion() const;
    /// Announces that this rank is done with the job (its exit is then not a loss).
    void leave();
    /// Observer of the protocol points of every version (tests inject faults through it).
    using PointObserver = std::function<void(protocol::Point, uint64_t version)>;
    void observePoints(PointObserver observer) { on_point_ = std::move(observer); }
    /// Where the agent's transport backends come from (before init(); default: the registry).
    void useBackends(transport::BackendFactory factory) { make_backend_ = std::move(factory); }
    /// Records versions, phases, bytes and failures there (before init(); engine/agent_metrics.h).
    void useMetrics(std::shared_ptr<AgentMetrics> metrics) { metrics_ = std::move(metrics); }
    /// Thread-safe: a serveStep() waiting for its version's request gives up within about a
    /// second with Errc::kTimeout, and so does every later one. A version already being received
    /// runs to its end.
    void cancel() { cancelled_.store(true); }

    [[nodiscard]] const JobSpec &spec() const { return spec_; }
    [[nodiscard]] const planner::PeerSpec &peer() const { return peer_; }
    [[nodiscard]] uint64_t version() const { return version_; }
    /// With flip, after init(): whether it flips by swapping its arenas (O(1)) rather than by
    /// copying staging over live (engine/protocol/version.h says when).
    [[nodiscard]] bool flipsBySwap() const { return swap_; }

  private:
    class Work;  // the rank's side of one version (protocol::InferenceWork)
    void receive(uint64_t version, protocol::Clock::time_point deadline);  // filesystem
    void apply(uint64_t version);                                          // staging -> live, hooks
    void runHooks(uint64_t version);  // built-in hooks, then the caller's
    protocol::InferenceWork::Restored restore(uint64_t held, bool applied);  // after a failure
    void adoptExternalTensors();  // checks the caller's tensors against the layout
    int64_t layOutArena();        // offsets_ of the tensors in one arena; returns its size
    void allocateArena(int gpu);  // the agent's own arena, registered once per backend
    void bindLive();              // weights_ -> the own arena that is live now
    [[nodiscard]] uint32_t writeTarget() const;  // the copy the writers write (Paused::target)
    void registerExternalTensors();
    void stageExternalTensors();  // staging: a staging arena for them, registered instead
    /// The writes land in one arena of the agent's (its own, or the caller's tensors' staging)
    /// at offsets_; else in each of the caller's tensors.
    [[nodiscard]] bool writesArena() const { return memory_ != nullptr || staged_ != nullptr; }
    [[nodiscard]] std::byte *arenaTarget() const;  // that arena (writesArena() only)
    void publishMemory();                          // the hello and the memory record
    [[nodiscard]] uint32_t peerIndex(const planner::Plan &plan) const;  // this rank's, in plan
    /// Two-sided transports (NCCL): derives the receives from the job's plan and forms the pair
    /// with every trainer rank that writes here.
    void pairWriters(const planner::Plan &plan);
    void matchWrites(protocol::Clock::time_point deadline);  // a version's receives (two-sided)
    [[noreturn]] void failInit(const Error &e);              // fails init for every agent, rethrows
    int64_t verify(uint64_t version, int64_t &checked);
    void planChecksums(const planner::Plan &plan);  // which writes of which trainer land here
    /// Trainer `trainer`'s first `writes` writes are complete here: checksums those of them
    /// that land here (beside the wire; checkWrites compares).
    void writesLanded(uint64_t version, int trainer, int64_t writes);
    /// Checksums trainer `trainer`'s writes into this rank among its first `writes` that are
    /// not checksummed yet in `version`.
    void checksumLanded(uint64_t version, size_t trainer, int64_t writes);
    /// Checks trainer `trainer`'s writes into this rank against the checksums of its done.
    void checkWrites(uint64_t version, int trainer, const protocol::Done &done);

    std::shared_ptr<control::Store> store_;
    int engine_, rank_;
    std::vector<ExternalTensor> external_;
    std::function<void(uint64_t)> after_update_;
    ReadersFactory make_readers_;
    std::shared_ptr<WeightCheck> check_;
    transport::BackendFactory make_backend_ = transport::makeBackend;
    std::shared_ptr<AgentMetrics> metrics_;
    std::atomic<bool> cancelled_{false};
    JobSpec spec_;
    std::unique_ptr<protocol::Session> session_;
    PointObserver on_point_;
    std::optional<layout::Layout> layout_;
    planner::PeerSpec peer_;
    LocalWeights weights_;
    std::vector<int64_t> offsets_;            // of each tensor in the agent's own arena
    std::unique_ptr<ReceiverMemory> memory_;  // the agent's own arena (not with external tensors)
    size_t copies_ = 1;     // copies of the own arena registered (2 with flip: both arenas)
    bool swap_ = false;     // flips by swapping the arenas' roles (set in init())
    bool swapped_ = false;  // this version's apply() swapped them
    std::unique_ptr<StagedTensors> staged_;  // the external tensors' staging copy (with staging)
    // Every transport the rank offers, each with the rank's memory registered once:
    // one region for the own arena, or one per external tensor.
    std::vector<std::unique_ptr<transport::TransportBackend>> backends_;
    std::vector<std::vector<std::unique_ptr<transport::LocalRegion>>> regions_;
    std::optional<size_t> two_sided_;         // index of the two-sided backend, if one
    std::vector<planner::Receive> receives_;  // its receives of every version, in order
    /// Host copies of the tensors the hooks read, when the weights live in device memory.
    LocalWeights hookWeights(std::vector<std::vector<std::byte>> &storage);
    std::vector<std::unique_ptr<UpdateHook>> hooks_;
    /// The filesystem transport's reader (the rank reads each version's checkpoint itself).
    std::unique_ptr<CheckpointReader> checkpoint_;
    bool prunes_ = false;  // this rank applies the checkpoint retention (the fleet's first)
    std::unique_ptr<WeightReaders> readers_;
    /// With checksums: per trainer rank, its writes that land here (index in its plan, the
    /// destination tensor, the range in it), and how many writes its plan has in all.
    struct Incoming {
        size_t index = 0;
        uint32_t dest = 0;
        int64_t offset = 0;
        int64_t bytes = 0;
    };
    std::vector<std::vector<Incoming>> incoming_;
    std::vector<size_t> trainer_writes_;
    std::unique_ptr<Checksummer> checksummer_;
    // What landed here, per trainer: the checksums of incoming_[t][0, hashed_[t]) in
    // checked_version_ (computed as the trainer's staged notices and done arrive).
    uint64_t checked_version_ = 0;
    std::vector<size_t> hashed_;
    std::vector<std::vector<uint64_t>> landed_;
    uint64_t version_ = 0;    // the version the rank serves (the last that committed here)
    uint64_t attempted_ = 0;  // the last version it took part in, committed or not
    uint64_t joinable_ = 1;   // the first version it can take part in (set when joining)
};

}  // namespace weightsync::engine
