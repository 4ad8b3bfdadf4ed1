#pragma once
// One inference rank: allocates its destination tensors once (or adopts the caller's, e.g. a torch
// module's parameters), registers them once, serves reads between updates, and per version pauses,
// waits for every writer, runs the post-update hooks, (optionally) verifies every byte against the
// reference converter, and resumes.

#include "control/store.h"
#include "engine/compute.h"
#include "engine/hooks.h"
#include "engine/job.h"
#include "engine/protocol/version.h"
#include "layout/layout.h"
#include "planner/geometry.h"
#include "transport/transport.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace weightsync::engine {

/// Outcome of one version on this rank.
struct StepResult {
    uint64_t version = 0;
    bool committed = false;  // runs the new version
    bool verified = false;   // every byte equal to the reference (when verification is on)
    int64_t checked_bytes = 0;
    int64_t mismatched_bytes = 0;
    double wait_seconds = 0;  // paused until every writer was done
    double hook_seconds = 0;
    double verify_seconds = 0;
};

/// A reader standing in for the inference engine's forward passes: it reads the weights while
/// serving and parks when paused, so no read ever overlaps an update.
class ReadLoop {
  public:
    ReadLoop(const std::byte *data, size_t bytes);
    ~ReadLoop();
    void pause();  // returns once the reader is parked
    void resume();
    [[nodiscard]] uint64_t reads() const { return reads_.load(); }

  private:
    void run();
    const std::byte *data_;
    size_t bytes_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool pause_requested_ = false;
    bool parked_ = false;
    bool stop_ = false;
    std::atomic<uint64_t> reads_{0};
    std::thread thread_;
};

/// Fault injection for tests (the only fakes the project has).
struct InferenceFaults {
    uint64_t die_at_version = 0;  // SIGKILL itself after pausing for that version (mid-push)
    std::string model;            // serve this layout instead of the job's (layout mismatch)
    std::string shrink_tensor;    // publish this tensor one byte short (descriptor mismatch)
};

/// A destination tensor owned by the caller (e.g. a torch parameter), registered in place: the
/// caller keeps the memory alive and in place for the agent's lifetime (bug B4).
struct ExternalTensor {
    std::string name;
    Shape shape;
    DType dtype = DType::kBF16;
    std::byte *data = nullptr;
    transport::MemoryKind kind = transport::MemoryKind::kHost;
    int device = -1;  // CUDA device ordinal, -1 for host memory
};

struct InferenceOptions {
    InferenceFaults faults;
    /// The rank's destination tensors, provided by the caller in planner::localTensors(layout,
    /// peer) order with the same names, shapes and dtypes; init() checks them, registers each as
    /// its own region and runs no ReadLoop (the caller's engine does the reads). Empty = the agent
    /// allocates and registers one arena of its own.
    std::vector<ExternalTensor> tensors;
    /// Runs after a version landed and the built-in hooks ran, before the rank resumes (e.g. to
    /// recompute derived tensors). If it throws, the version fails on every rank (see
    /// engine/protocol/version.h) and serveStep rethrows.
    std::function<void(uint64_t version)> after_update;
};

class InferenceAgent {
  public:
    InferenceAgent(std::shared_ptr<control::Store> store, int engine, int rank,
                   InferenceFaults faults = {});
    InferenceAgent(std::shared_ptr<control::Store> store, int engine, int rank,
                   InferenceOptions options);
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
    /// Thread-safe: a serveStep() waiting for its version's request gives up within about a
    /// second with Errc::kTimeout, and so does every later one. A version already being received
    /// runs to its end.
    void cancel() { cancelled_.store(true); }

    [[nodiscard]] const JobSpec &spec() const { return spec_; }
    [[nodiscard]] const planner::PeerSpec &peer() const { return peer_; }
    [[nodiscard]] uint64_t version() const { return version_; }

  private:
    class Work;                       // the rank's side of one version (protocol::InferenceWork)
    void apply(uint64_t version);     // staging -> live, hooks
    void runHooks(uint64_t version);  // built-in hooks, then the caller's
    protocol::InferenceWork::Restored restore(uint64_t held, bool applied);  // after a failure
    void adoptExternalTensors();  // checks the caller's tensors against the layout
    int64_t verify(uint64_t version, int64_t &checked) const;

    std::shared_ptr<control::Store> store_;
    int engine_, rank_;
    InferenceFaults faults_;
    std::vector<ExternalTensor> external_;
    std::function<void(uint64_t)> after_update_;
    std::atomic<bool> cancelled_{false};
    JobSpec spec_;
    std::unique_ptr<protocol::Session> session_;
    PointObserver on_point_;
    std::optional<layout::Layout> layout_;
    planner::PeerSpec peer_;
    LocalWeights weights_;
    std::vector<int64_t> offsets_;            // of each tensor in the agent's own arena
    std::unique_ptr<ReceiverMemory> memory_;  // the agent's own arena (not with external tensors)
    // Every transport the rank offers, each with the rank's memory registered once:
    // one region for the own arena, or one per external tensor.
    std::vector<std::unique_ptr<transport::TransportBackend>> backends_;
    std::vector<std::vector<std::unique_ptr<transport::LocalRegion>>> regions_;
    /// Host copies of the tensors the hooks read, when the weights live in device memory.
    LocalWeights hookWeights(std::vector<std::vector<std::byte>> &storage);
    std::vector<std::unique_ptr<UpdateHook>> hooks_;
    std::unique_ptr<ReadLoop> reader_;
    uint64_t version_ = 0;    // the version the rank serves (the last that committed here)
    uint64_t attempted_ = 0;  // the last version it took part in, committed or not
    uint64_t joinable_ = 1;   // the first version it can take part in (set when joining)
};

}  // namespace weightsync::engine
