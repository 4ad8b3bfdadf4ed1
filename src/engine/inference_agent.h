#pragma once
// One inference rank: allocates its destination tensors once, registers them once, serves reads
// between updates, and per version pauses, waits for every writer, runs the post-update hooks,
// (optionally) verifies every byte against the reference converter, and resumes.

#include "control/store.h"
#include "engine/arena.h"
#include "engine/hooks.h"
#include "engine/job.h"
#include "layout/layout.h"
#include "planner/geometry.h"
#include "transport/transport.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace weightsync::engine {

/// Outcome of one version on this rank.
struct StepResult {
    uint64_t version = 0;
    bool committed = false;       // runs the new version
    bool verified = false;        // every byte equal to the reference (when verification is on)
    int64_t checked_bytes = 0;
    int64_t mismatched_bytes = 0;
    double wait_seconds = 0;      // paused until every writer was done
    double hook_seconds = 0;
    double verify_seconds = 0;
};

/// A reader standing in for the inference engine's forward passes: it reads the weights while
/// serving and parks when paused, so no read ever overlaps an update.
class ReadLoop {
  public:
    ReadLoop(const std::byte *data, size_t bytes);
    ~ReadLoop();
    void pause();   // returns once the reader is parked
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

class InferenceAgent {
  public:
    InferenceAgent(std::shared_ptr<control::Store> store, int engine, int rank,
                   InferenceFaults faults = {});
    ~InferenceAgent();

    void init();
    /// Serves one update; throws after publishing step/<version>/aborted when the push failed.
    StepResult serveStep(uint64_t version);

    [[nodiscard]] const JobSpec &spec() const { return spec_; }
    [[nodiscard]] const planner::PeerSpec &peer() const { return peer_; }
    [[nodiscard]] uint64_t version() const { return version_; }

  private:
    void waitForRequest(uint64_t version);
    int64_t verify(uint64_t version, int64_t &checked) const;

    std::shared_ptr<control::Store> store_;
    int engine_, rank_;
    InferenceFaults faults_;
    JobSpec spec_;
    std::optional<layout::Layout> layout_;
    planner::PeerSpec peer_;
    LocalWeights weights_;
    std::vector<int64_t> offsets_;  // of each tensor in the arena
    std::unique_ptr<Arena> live_;
    std::unique_ptr<Arena> staging_;  // receives the writes when spec.staging
    std::unique_ptr<transport::TransportBackend> backend_;
    std::unique_ptr<transport::LocalRegion> region_;
    std::vector<std::unique_ptr<UpdateHook>> hooks_;
    std::unique_ptr<ReadLoop> reader_;
    uint64_t version_ = 0;
};

}  // namespace weightsync::engine
