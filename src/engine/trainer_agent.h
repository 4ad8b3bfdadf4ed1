#pragma once
// One trainer rank: holds its weights (synthetic, deterministic per seed, or the caller's tensors
// through a SourceProvider), allocates and registers its slot arena once, and per version converts
// + quantizes into the slots and writes them into the inference ranks' registered memory.

#include "control/store.h"
#include "convert/source.h"
#include "engine/agent_metrics.h"
#include "engine/checkpoint_io.h"
#include "engine/compute.h"
#include "engine/job.h"
#include "engine/messages.h"
#include "engine/metrics.h"
#include "engine/protocol/version.h"
#include "layout/layout.h"
#include "planner/plan.h"
#include "transport/registry.h"
#include "transport/transport.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>

namespace weightsync::engine {

class TrainerAgent {
  public:
    /// store: the job's namespace in the coordinator.
    TrainerAgent(std::shared_ptr<control::Store> store, int rank);
    /// Reads the caller's weights through `sources` (e.g. torch tensors from the Python binding)
    /// instead of generating synthetic ones; push() then converts whatever they hold at the time.
    /// A null provider means synthetic weights, as the two-argument constructor.
    TrainerAgent(std::shared_ptr<control::Store> store, int rank,
                 std::shared_ptr<const convert::SourceProvider> sources);
    ~TrainerAgent();

    /// Rendezvous: reads the job spec, exchanges hellos, plans, allocates and registers the slot
    /// arena, connects to the peers and validates every descriptor. Any mismatch fails init on
    /// every agent (init/failed) and throws.
    void init();
    /// Pushes weight version `version` (above every version pushed before) as
    /// engine/protocol/version.h describes: waits for every receiver to pause, converts, writes,
    /// and returns once every receiver serves the version. Throws the version's cause when it
    /// fails anywhere; the job may go on with a later version.
    PushMetrics push(uint64_t version);
    /// Announces that this rank is done with the job (its exit is then not a loss).
    void leave();
    /// Observer of the protocol points of every version (tests inject faults through it).
    using PointObserver = std::function<void(protocol::Point, uint64_t version)>;
    void observePoints(PointObserver observer) { on_point_ = std::move(observer); }
    /// Where the agent's transport backends come from (before init(); default: the registry).
    /// Tests inject faults through it (transport/fault/).
    void useBackends(transport::BackendFactory factory) { make_backend_ = std::move(factory); }
    /// Records versions, phases, bytes and failures there (before init(); engine/agent_metrics.h).
    void useMetrics(std::shared_ptr<AgentMetrics> metrics) { metrics_ = std::move(metrics); }

    [[nodiscard]] const JobSpec &spec() const { return spec_; }
    [[nodiscard]] const planner::Plan &plan() const { return *plan_; }
    [[nodiscard]] const layout::Layout &layout() const { return *layout_; }
    [[nodiscard]] int rank() const { return rank_; }
    /// The last version that committed (0 before the first).
    [[nodiscard]] uint64_t version() const { return version_; }
    /// The last version pushed, committed or not (0 before the first push).
    [[nodiscard]] uint64_t attempted() const { return attempted_; }

  private:
    void rendezvous();
    void connectPeers();
    /// (Re)imports peer q's memory from its record: validated, connected, targets rebuilt.
    void connectPeer(size_t q, const MemoryRecord &record);
    /// Two-sided transports (NCCL): forms the pair with every peer this rank writes into.
    void pairPeers(std::chrono::steady_clock::time_point deadline);
    /// Before writing a version: peers that rejoined (a newer memory generation) are imported
    /// again; an older generation is a stale descriptor and refused.
    void refreshPeers();
    class Transfer;  // the data work of one version (protocol::TrainerWork)
    void transfer(uint64_t version, PushMetrics &m);
    void transferStages(uint64_t version, PushMetrics &m);
    /// After a failed transfer: ends every backend's epoch (a flush whose errors are dropped),
    /// so that writes the failed version posted and never flushed (to a peer that died, say)
    /// are not reported again by the next version's flush.
    void abandonWrites() noexcept;
    void at(protocol::Point point, uint64_t version) {
        if (on_point_) on_point_(point, version);
    }
    void writeStage(size_t &next_write, uint32_t stage, PushMetrics &m);
    /// Filesystem transport, after the rank's writes are synced: ranks > 0 publish the hashes of
    /// their writes; rank 0 waits for every rank and makes the checkpoint final.
    void finishCheckpoint(uint64_t version, PushMetrics &m);
    [[noreturn]] void failInit(const Error &e);
    /// The backend named `name`, created on first use with the slot arena registered once.
    struct Link {
        std::unique_ptr<transport::TransportBackend> backend;
        std::unique_ptr<transport::LocalRegion> region;
    };
    Link &link(const std::string &name);

    std::shared_ptr<control::Store> store_;
    int rank_;
    JobSpec spec_;
    std::unique_ptr<protocol::Session> session_;
    PointObserver on_point_;
    std::shared_ptr<AgentMetrics> metrics_;
    transport::BackendFactory make_backend_ = transport::makeBackend;
    std::optional<layout::Layout> layout_;
    std::optional<planner::Plan> plan_;
    std::shared_ptr<const convert::SourceProvider> external_;  // the caller's weights, if any
    std::unique_ptr<TrainerCompute> compute_;                  // weights, slot arena, conversion
    std::map<std::string, Link> links_;
    std::unique_ptr<CheckpointWriter> checkpoint_;         // the filesystem transport's writer
    std::vector<checkpoint::HashedRange> written_ranges_;  // this version's writes, hashed
    // targets_[peer][dest]: how to write that tensor: backend, imported region of each copy of
    // the peer's memory (MemoryRecord::copies), offset in it.
    struct Target {
        Link *link = nullptr;
        std::vector<transport::RemoteRegion *> regions;
        uint64_t offset = 0;
    };
    std::vector<std::vector<Target>> targets_;
    std::vector<uint32_t> copy_;  // copy_[peer]: the copy this version writes (Paused::target)
    /// Before writing a version: the copy each peer asked for, checked against its record.
    void chooseCopies(const std::vector<std::pair<std::string, uint32_t>> &copies);
    // imported_[peer]: the peer's regions as this rank imported them, of generations_[peer].
    std::vector<std::vector<std::unique_ptr<transport::RemoteRegion>>> imported_;
    std::vector<uint64_t> generations_;
    std::vector<bool> writes_to_;  // this rank writes into peer q
    uint64_t version_ = 0;         // the last version that committed
    uint64_t attempted_ = 0;       // the last version pushed, committed or not
};

}  // namespace weightsync::engine
