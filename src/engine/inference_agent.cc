#include "engine/inference_agent.h"

#include "common/error.h"
#include "common/host.h"
#include "common/log.h"
#include "engine/endpoints.h"
#include "engine/messages.h"
#include "engine/metrics.h"
#include "engine/protocol/version.h"
#include "layout/registry.h"
#include "planner/plan.h"
#include "planner/receives.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <optional>

namespace weightsync::engine {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace keys = protocol::keys;

namespace {
constexpr int64_t kAlign = 256;
}  // namespace

InferenceAgent::InferenceAgent(std::shared_ptr<control::Store> store, int engine, int rank,
                               InferenceOptions options)
    : store_(std::move(store)),
      engine_(engine),
      rank_(rank),
      external_(std::move(options.tensors)),
      after_update_(std::move(options.after_update)),
      make_readers_(std::move(options.readers)),
      check_(std::move(options.check)) {}

InferenceAgent::~InferenceAgent() {
    readers_.reset();
    for (auto &b : backends_) b->stopProgressThread();
}

void InferenceAgent::adoptExternalTensors() {
    const std::vector<planner::LocalTensor> &want = weights_.tensors;
    try {
        check(external_.size() == want.size(), Errc::kMismatch,
              "inference {}: {} tensors provided, the layout has {} on this rank", peer_.name,
              external_.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) {
            const ExternalTensor &t = external_[i];
            check(t.name == want[i].name, Errc::kMismatch,
                  "inference {}: tensor {} is '{}', the layout expects '{}'", peer_.name, i, t.name,
                  want[i].name);
            check(t.shape == want[i].shape && t.dtype == want[i].dtype, Errc::kMismatch,
                  "inference {}: '{}' is {} {}, the layout expects {} {}", peer_.name, t.name,
                  shapeString(t.shape), dtypeName(t.dtype), shapeString(want[i].shape),
                  dtypeName(want[i].dtype));
            check(t.data != nullptr && want[i].bytes > 0, Errc::kInvalidArgument,
                  "inference {}: '{}' has no memory", peer_.name, t.name);
            check(!spec_.verify || t.kind == transport::MemoryKind::kHost, Errc::kUnsupported,
                  "inference {}: the job verifies, which a rank does for the caller's tensors "
                  "in host memory only, but '{}' is in device memory (run the job with verify "
                  "off)",
                  peer_.name, t.name);
            const ExternalTensor &first = external_.front();
            check(t.kind == first.kind && t.device == first.device, Errc::kInvalidArgument,
                  "inference {}: '{}' is on device {}, but '{}' is on device {} (-1: host): a "
                  "rank's tensors must all live on one device",
                  peer_.name, t.name, t.device, first.name, first.device);
            weights_.data.push_back(t.data);
        }
        weights_.on_device = external_.front().kind == transport::MemoryKind::kCuda;
        weights_.device = external_.front().device;
    } catch (const Error &e) {
        // Nobody else can see this failure: fail init for every agent rather than let them wait.
        try {
            session_->failInit(e.code(), fmt::format("inference {}: {}", peer_.name, e.what()));
        } catch (const Error &) {
        }
        throw;
    }
}

void InferenceAgent::init() {
    spec_ = JobSpec::parse(store_->wait(keys::spec(), std::chrono::seconds(60)));
    layout_.emplace(jobLayout(spec_));
    const layout::Layout &layout = *layout_;
    const auto peers = planner::fleetPeers(spec_.fleet, planner::layoutExperts(layout));
    const auto it = std::find_if(peers.begin(), peers.end(), [&](const planner::PeerSpec &p) {
        return p.engine == engine_ && p.rank == rank_;
    });
    check(it != peers.end(), Errc::kInvalidArgument,
          "inference engine {} rank {} is not part of the job's fleet", engine_, rank_);
    peer_ = *it;
    check(!spec_.verify || check_ != nullptr, Errc::kInvalidArgument,
          "inference {}: the job verifies every version, but this rank was given no weight "
          "check (InferenceOptions::check)",
          peer_.name);
    protocol::Roster roster{spec_.mesh.ranks(), {}};
    for (const planner::PeerSpec &p : peers) roster.peers.push_back(p.name);
    session_ = std::make_unique<protocol::Session>(store_, protocol::inferenceName(peer_.name),
                                                   std::move(roster), spec_.retain_versions);
    session_->holdLiveness(spec_.liveness_ttl);

    // Destination tensors, allocated once in one arena and registered once, or the caller's
    // tensors, each registered once where it lives; never re-registered while the job runs.
    weights_.layout = &layout;
    weights_.tensors = planner::localTensors(layout, peer_);
    if (external_.empty()) {
        try {
            allocateArena(inferenceGpu(spec_, static_cast<int>(it - peers.begin())));
        } catch (const Error &e) {
            failInit(e);
        }
    } else {
        adoptExternalTensors();
        if (spec_.staging) {
            try {
                stageExternalTensors();
            } catch (const Error &e) {
                failInit(e);
            }
        } else {
            registerExternalTensors();
        }
    }
    for (auto &b : backends_) b->startProgressThread();
    // The built-in hooks (GLM-5's MLA absorb) run on the GPU for device weights, the agent's own
    // or the caller's; a hook that needs host memory reads host copies of the agent's own arena
    // and is left to the caller's after_update for the caller's device tensors.
    if (spec_.transport == transport::TransportChoice::kFilesystem) {
        check(!weights_.on_device, Errc::kUnsupported,
              "inference {}: transport 'filesystem' reads into host memory; this rank's tensors "
              "are on a GPU",
              peer_.name);
        checkpoint_ = std::make_unique<CheckpointReader>(spec_, layout, peer_);
        prunes_ = it == peers.begin();
    }
    hooks_ = hooksFor(spec_.model);
    if (weights_.on_device && !memory_) {
        std::erase_if(hooks_, [&](const std::unique_ptr<UpdateHook> &h) {
            if (h->supportsDevice()) return false;
            logger("inference")
                ->warn("{}: hook {} needs host memory; it does not run on device tensors",
                       peer_.name, h->name());
            return true;
        });
    }
    publishMemory();
    // The plan is a pure function of the job, the same on every agent: built once, for what
    // needs it here (a two-sided transport's receives, the writes to checksum).
    std::optional<planner::Plan> plan;
    try {
        const bool two_sided = std::any_of(backends_.begin(), backends_.end(), [](const auto &b) {
            return b->capabilities().two_sided;
        });
        if (two_sided || spec_.checksum) {
            plan.emplace(planner::buildPlan(*layout_, spec_.mesh, spec_.fleet, spec_.planner));
        }
        if (two_sided) pairWriters(*plan);
    } catch (const Error &e) {
        failInit(e);
    }
    if (spec_.checksum) planChecksums(*plan);

    std::vector<std::string> ready;
    for (int t = 0; t < spec_.mesh.ranks(); ++t) ready.push_back(keys::trainerReady(t));
    // Where ranks may rejoin, another rank's loss is not this one's concern here.
    (void)session_->await(
        ready, Clock::now() + spec_.init_timeout,
        protocol::AbortOn{.init = true, .lost_needed_only = spec_.rejoin_timeout.count() > 0},
        "inference " + peer_.name + ": waiting for the trainers");
    // Joining a running job (a restarted rank): take part from the version in flight on, or
    // from the next one if it is decided already.
    if (const auto latest = session_->cached(keys::latest())) {
        const uint64_t v = std::stoull(*latest);
        joinable_ = session_->cached(keys::outcome(v)) ? v + 1 : v;
    }
    if (make_readers_) readers_ = make_readers_(weights_);
    // The flip swaps the arenas' roles where nobody holds the live addresses for good: the
    // agent's own arena (the caller's tensors are never staged), read by readers that can follow
    // a new address. Otherwise it copies staging over live (compute.h, ReceiverMemory::flip).
    swap_ = spec_.flip && !spec_.flip_copy && memory_ && memory_->arenas() == 2 &&
            (!readers_ || readers_->canRebind());
    if (spec_.flip) {
        logger("inference")
            ->info("{}: flip by {}", peer_.name,
                   swap_ ? "swapping live and staging (O(1))" : "copying staging over live");
    }
    int64_t total = 0;
    for (const planner::LocalTensor &t : weights_.tensors) total += t.bytes;
    if (metrics_ && !regions_.empty()) {
        // The same memory, registered once per backend: counted once.
        int64_t registered = 0;
        for (const auto &region : regions_.front())
            registered += static_cast<int64_t>(region->size());
        metrics_->setRegisteredBytes(registered);
    }
    logger("inference")
        ->info("{}: ready, {} tensors, {} bytes", peer_.name, weights_.tensors.size(), total);
}

int64_t InferenceAgent::layOutArena() {
    int64_t total = 0;
    for (const planner::LocalTensor &t : weights_.tensors) {
        total = (total + kAlign - 1) / kAlign * kAlign;
        offsets_.push_back(total);
        total += t.bytes;
    }
    return total;
}

std::byte *InferenceAgent::arenaTarget() const {
    return memory_ ? memory_->target().data() : staged_->staging().data();
}

void InferenceAgent::allocateArena(int gpu) {
    const int64_t total = layOutArena();
    const auto kind =
        spec_.device == Device::kCuda ? transport::MemoryKind::kCuda : transport::MemoryKind::kHost;
    backends_ = receiverBackends(spec_, kind, gpu, make_backend_);
    // A single transport may offer memory it can be written into one-sided (UCX shared
    // memory): then the writers' copies land directly and this rank does no work at all.
    // With flip both arenas take writes (a swap flip makes live the next version's staging).
    copies_ = spec_.flip ? 2 : 1;
    std::vector<std::unique_ptr<transport::LocalRegion>> offered;
    if (backends_.size() == 1) {
        for (size_t c = 0; c < copies_; ++c) {
            offered.push_back(
                backends_.front()->allocateMemory(static_cast<size_t>(total), kind, gpu));
            if (!offered.back()) offered.clear();
            if (offered.empty()) break;
        }
    }
    const auto view = [&](size_t c) -> std::unique_ptr<Arena> {
        if (c >= offered.size()) return nullptr;
        return platform::viewArena(static_cast<std::byte *>(offered[c]->data()), offered[c]->size(),
                                   kind, gpu);
    };
    // offered[0] backs the arena that receives writes first (staging, or the only one).
    memory_ = makeReceiverMemory(spec_, gpu, static_cast<size_t>(total), view(0), view(1));
    bindLive();
    weights_.on_device = memory_->live().kind() == transport::MemoryKind::kCuda;
    weights_.device = memory_->live().device();
    // Registered once per backend: the arena that receives writes, or with flip both arenas,
    // as region i = arena i (the writers' copy i, Paused::target).
    std::vector<size_t> registered;
    if (copies_ == 2) {
        registered = {0, 1};
    } else {
        registered = {memory_->targetIndex()};
    }
    for (auto &b : backends_) {
        regions_.emplace_back();
        if (!offered.empty()) {
            // The staging arena is arena 1, backed by offered[0]; the live one by offered[1].
            if (copies_ == 2) {
                regions_.back().push_back(std::move(offered[1]));
                regions_.back().push_back(std::move(offered[0]));
            } else {
                regions_.back().push_back(std::move(offered[0]));
            }
            continue;
        }
        for (const size_t a : registered) {
            const Arena &arena = memory_->arena(a);
            regions_.back().push_back(
                b->registerMemory(arena.data(), arena.size(), arena.kind(), arena.device()));
        }
    }
}

void InferenceAgent::bindLive() {
    const Arena &live = memory_->live();
    weights_.data.clear();
    for (const int64_t off : offsets_) weights_.data.push_back(live.data() + off);
}

uint32_t InferenceAgent::writeTarget() const {
    // Region i of the own arena's record is arena i when both are registered (flip).
    return memory_ && copies_ == 2 ? static_cast<uint32_t>(memory_->targetIndex()) : 0;
}

void InferenceAgent::registerExternalTensors() {
    const ExternalTensor &first = external_.front();
    backends_ = receiverBackends(spec_, first.kind, first.device, make_backend_);
    for (auto &b : backends_) {
        regions_.emplace_back();
        for (size_t i = 0; i < external_.size(); ++i) {
            const ExternalTensor &t = external_[i];
            try {
                regions_.back().push_back(b->registerMemory(
                    t.data, static_cast<size_t>(weights_.tensors[i].bytes), t.kind, t.device));
            } catch (const Error &e) {
                const Error named(e.code(), fmt::format("inference {}: registering '{}': {}",
                                                        peer_.name, t.name, e.what()));
                try {
                    (void)store_->compareSet(keys::initFailed(), std::nullopt, named.what());
                } catch (const Error &) {
                }
                throw named;
            }
        }
    }
}

void InferenceAgent::stageExternalTensors() {
    // The caller's tensors stay unregistered: every write lands in the staging arena (laid out as
    // the agent's own arena would be), and apply() makes it live in the caller's tensors.
    const int64_t total = layOutArena();
    std::vector<StagedTensor> tensors;
    for (size_t i = 0; i < weights_.tensors.size(); ++i) {
        tensors.push_back({weights_.data[i], static_cast<size_t>(offsets_[i]),
                           static_cast<size_t>(weights_.tensors[i].bytes)});
    }
    staged_ = makeStagedTensors(std::move(tensors), static_cast<size_t>(total),
                                weights_.on_device ? weights_.device : -1);
    const Arena &target = staged_->staging();
    backends_ = receiverBackends(spec_, target.kind(), target.device(), make_backend_);
    for (auto &b : backends_) {
        regions_.emplace_back();
        regions_.back().push_back(
            b->registerMemory(target.data(), target.size(), target.kind(), target.device()));
    }
}

void InferenceAgent::publishMemory() {
    const InferenceHello hello{peer_, layout_->fingerprint(), weights_.tensors};
    store_->set(keys::inferenceHello(peer_.name), hello.toJson().dump());
    MemoryRecord record;
    record.host = hostIdentity();
    record.generation = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    record.copies = static_cast<uint32_t>(copies_);
    for (size_t b = 0; b < backends_.size(); ++b) {
        Endpoint ep{backends_[b]->capabilities().name, backends_[b]->address(), {}};
        for (const auto &r : regions_[b]) ep.regions.push_back(r->describe());
        record.endpoints.push_back(std::move(ep));
    }
    for (size_t i = 0; i < weights_.tensors.size(); ++i) {
        const auto bytes = static_cast<uint64_t>(weights_.tensors[i].bytes);
        const Chunk chunk = writesArena() ? Chunk{0, static_cast<uint64_t>(offsets_[i]), bytes}
                                          : Chunk{static_cast<uint32_t>(i), 0, bytes};
        record.tensors.push_back({weights_.tensors[i].name, weights_.tensors[i].bytes, {chunk}});
    }
    store_->set(keys::memory(peer_.name), record.toJson().dump());
}

void InferenceAgent::failInit(const Error &e) {
    // Nobody else can see this failure: fail init for every agent rather than let them wait.
    try {
        session_->failInit(e.code(), fmt::format("inference {}: {}", peer_.name, e.what()));
    } catch (const Error &) {
        // The coordinator may be the thing that failed.
    }
    throw e;
}

uint32_t InferenceAgent::peerIndex(const planner::Plan &plan) const {
    const auto q = std::find_if(plan.peers.begin(), plan.peers.end(),
                                [&](const planner::PeerSpec &p) { return p.name == peer_.name; });
    check(q != plan.peers.end(), Errc::kInternal, "inference {}: not in the job's plan",
          peer_.name);
    return static_cast<uint32_t>(q - plan.peers.begin());
}

void InferenceAgent::pairWriters(const planner::Plan &plan) {
    const auto it = std::find_if(backends_.begin(), backends_.end(),
                                 [](const auto &b) { return b->capabilities().two_sided; });
    check(it != backends_.end(), Errc::kInternal,
          "inference {}: pairing without a two-sided "
          "transport",
          peer_.name);
    two_sided_ = static_cast<size_t>(it - backends_.begin());
    // The receives match each trainer's writes in order.
    const uint32_t index = peerIndex(plan);
    receives_ = planner::receivesOf(plan, index);
    const std::vector<int> writers = planner::writersOf(plan, index);
    std::vector<std::string> token_keys;
    for (const int t : writers) token_keys.push_back(keys::pairToken(t, peer_.name));
    const auto deadline = Clock::now() + spec_.init_timeout;
    const auto tokens =
        session_->await(token_keys, deadline, protocol::AbortOn{.init = true},
                        "inference " + peer_.name + ": waiting for the trainers' pairing tokens");
    // In ascending trainer rank, as every trainer pairs in ascending peer order.
    for (size_t i = 0; i < writers.size(); ++i) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        (*it)->pair(protocol::trainerName(writers[i]), tokens[i], /*writer=*/false,
                    std::max(left, std::chrono::milliseconds(1)));
    }
}

void InferenceAgent::matchWrites(Clock::time_point deadline) {
    if (!two_sided_) return;
    transport::TransportBackend &b = *backends_[*two_sided_];
    const auto &regions = regions_[*two_sided_];
    // Stage by stage, each stage one batch, each trainer's receives in its plan order.
    for (size_t i = 0; i < receives_.size(); ++i) {
        const planner::Receive &r = receives_[i];
        if (i > 0 && r.stage != receives_[i - 1].stage) b.submit();
        const bool arena = writesArena();
        const transport::LocalRegion &region = *regions[arena ? writeTarget() : r.dest];
        const auto offset = static_cast<size_t>((arena ? offsets_[r.dest] : 0) + r.dest_offset);
        b.postReceive(region, offset, protocol::trainerName(r.trainer),
                      static_cast<size_t>(r.bytes));
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    (void)b.flush(std::max(left, std::chrono::milliseconds(1)));
}

void InferenceAgent::planChecksums(const planner::Plan &plan) {
    // The trainers' checksums come in the order of their plans' writes.
    const uint32_t me = peerIndex(plan);
    incoming_.assign(plan.ranks.size(), {});
    trainer_writes_.assign(plan.ranks.size(), 0);
    for (size_t t = 0; t < plan.ranks.size(); ++t) {
        const std::vector<planner::Write> &writes = plan.ranks[t].writes;
        trainer_writes_[t] = writes.size();
        for (size_t i = 0; i < writes.size(); ++i) {
            const planner::Write &w = writes[i];
            if (w.peer == me) incoming_[t].push_back({i, w.dest, w.dest_offset, w.bytes});
        }
    }
    landed_.assign(plan.ranks.size(), {});
    checksummer_ = makeChecksummer(weights_.on_device ? weights_.device : -1);
}

void InferenceAgent::checksumLanded(uint64_t version, size_t trainer, int64_t writes) {
    if (checked_version_ != version) {  // the first notice of this version: nothing hashed yet
        checked_version_ = version;
        hashed_.assign(incoming_.size(), 0);
        for (size_t t = 0; t < incoming_.size(); ++t) landed_[t].assign(incoming_[t].size(), 0);
    }
    const std::vector<Incoming> &in = incoming_[trainer];
    size_t &from = hashed_[trainer];
    size_t to = from;
    while (to < in.size() && static_cast<int64_t>(in[to].index) < writes) ++to;
    if (to == from) return;
    // What landed: in staging when the rank stages, else in the live tensors.
    const std::byte *base = writesArena() ? arenaTarget() : nullptr;
    std::vector<ByteRange> ranges;
    ranges.reserve(to - from);
    for (size_t i = from; i < to; ++i) {
        const Incoming &w = in[i];
        const std::byte *tensor = base ? base + offsets_[w.dest] : weights_.data[w.dest];
        ranges.push_back({tensor + w.offset, static_cast<uint64_t>(w.bytes)});
    }
    const std::vector<uint64_t> sums = checksummer_->compute(ranges);
    std::copy(sums.begin(), sums.end(), landed_[trainer].begin() + static_cast<ptrdiff_t>(from));
    from = to;
}

void InferenceAgent::writesLanded(uint64_t version, int trainer, int64_t writes) {
    if (!spec_.checksum) return;
    const auto t = static_cast<size_t>(trainer);
    check(t < incoming_.size() && writes >= 0 && static_cast<size_t>(writes) <= trainer_writes_[t],
          Errc::kProtocol, "inference {}: version {}: trainer rank {} says {} of its writes landed",
          peer_.name, version, trainer, writes);
    checksumLanded(version, t, writes);
}

void InferenceAgent::checkWrites(uint64_t version, int trainer, const protocol::Done &done) {
    if (!spec_.checksum) return;
    const auto t = static_cast<size_t>(trainer);
    check(t < incoming_.size(), Errc::kProtocol, "inference {}: done from trainer rank {} of {}",
          peer_.name, trainer, incoming_.size());
    check(done.checksums.size() == trainer_writes_[t], Errc::kProtocol,
          "inference {}: version {}: trainer rank {} sent {} checksums, its plan has {} writes",
          peer_.name, version, trainer, done.checksums.size(), trainer_writes_[t]);
    const std::vector<Incoming> &in = incoming_[t];
    if (in.empty()) return;
    // Every write is complete now: checksum those its staged notices did not cover.
    checksumLanded(version, t, static_cast<int64_t>(trainer_writes_[t]));
    const std::vector<uint64_t> &landed = landed_[t];
    size_t bad = 0;
    size_t first = 0;
    for (size_t i = 0; i < in.size(); ++i) {
        if (landed[i] != done.checksums[in[i].index] && bad++ == 0) first = i;
    }
    if (bad == 0) return;
    const Incoming &w = in[first];
    fail(Errc::kCorruption,
         "inference {}: version {}: checksum mismatch in '{}' bytes [{}, {}) written by trainer "
         "rank {} (sent {}, landed {}); {} of its {} writes here differ",
         peer_.name, version, weights_.tensors[w.dest].name, w.offset, w.offset + w.bytes, trainer,
         checksumHex(done.checksums[w.index]), checksumHex(landed[first]), bad, in.size());
}

int64_t InferenceAgent::verify(uint64_t version, int64_t &checked) {
    return check_->mismatches(version, RankWeights{spec_, peer_, weights_, hooks_}, checked);
}

LocalWeights InferenceAgent::hookWeights(std::vector<std::vector<std::byte>> &storage) {
    // Host tensors, or the caller's (init() kept device-capable hooks only for those).
    if (!memory_ || !weights_.on_device) return weights_;
    const bool all_device = std::all_of(hooks_.begin(), hooks_.end(),
                                        [](const auto &h) { return h->supportsDevice(); });
    if (all_device) return weights_;  // device pointers: the hooks run on the GPU
    LocalWeights host = weights_;
    host.on_device = false;
    host.device = -1;
    std::fill(host.data.begin(), host.data.end(), nullptr);
    for (const auto &hook : hooks_) {
        for (const std::string &name : hook->inputs(*layout_)) {
            const size_t i = layout_->destIndex(name);
            if (host.data[i] != nullptr) continue;
            storage.emplace_back(static_cast<size_t>(weights_.tensors[i].bytes));
            memory_->readLive(static_cast<size_t>(offsets_[i]), storage.back().size(),
                              storage.back().data());
            host.data[i] = storage.back().data();
        }
    }
    return host;
}

/// The rank's side of one version: parks and restarts the readers, applies and restores the
/// weights; the protocol decides when.
class InferenceAgent::Work : public protocol::InferenceWork {
  public:
    explicit Work(InferenceAgent &agent) : agent_(agent) {}
    void pause() override {
        if (agent_.readers_) agent_.readers_->pause();
    }
    void resume() override {
        if (agent_.readers_) agent_.readers_->resume();
    }
    double takeProbeGapSeconds() override {
        return agent_.readers_ ? agent_.readers_->takeLongestGapSeconds() : -1;
    }
    void at(protocol::Point point, uint64_t version) override {
        if (agent_.on_point_) agent_.on_point_(point, version);
    }
    uint32_t writeTarget() override { return agent_.writeTarget(); }
    bool swapped() override { return agent_.swapped_; }
    void receive(uint64_t version, protocol::Clock::time_point deadline) override {
        agent_.receive(version, deadline);
    }
    void matchWrites(uint64_t /*version*/, protocol::Clock::time_point deadline) override {
        agent_.matchWrites(deadline);
    }
    void writesLanded(uint64_t version, int trainer, int64_t writes) override {
        agent_.writesLanded(version, trainer, writes);
    }
    void checkWrites(uint64_t version, int trainer, const protocol::Done &done) override {
        agent_.checkWrites(version, trainer, done);
    }
    void apply(uint64_t version) override { agent_.apply(version); }
    Restored restore(uint64_t held, bool applied) override { return agent_.restore(held, applied); }

  private:
    InferenceAgent &agent_;
};

void InferenceAgent::runHooks(uint64_t version) {
    if (!hooks_.empty()) {
        std::vector<std::vector<std::byte>> storage;
        const LocalWeights inputs = hookWeights(storage);
        for (const auto &hook : hooks_) hook->afterUpdate(version, inputs);
    }
    if (after_update_) after_update_(version);
}

void InferenceAgent::receive(uint64_t version, protocol::Clock::time_point deadline) {
    if (!checkpoint_) return;  // the trainers wrote the bytes
    checkpoint_->verify(version, deadline);
    if (!spec_.staging) return;  // apply() reads into the live tensors once every rank verified
    std::vector<std::byte *> staging;
    for (const int64_t off : offsets_) staging.push_back(arenaTarget() + off);
    checkpoint_->copy(staging);
}

void InferenceAgent::apply(uint64_t version) {
    // Filesystem, in place: every rank has verified its files (the landed barrier), so the live
    // tensors are only touched once the whole fleet can load the version.
    if (checkpoint_ && !spec_.staging) checkpoint_->copy(weights_.data);
    if (swap_) {
        // The only work while the readers wait: they, the hooks and the checks follow live.
        memory_->swap();
        swapped_ = true;
        bindLive();
        if (readers_) readers_->rebind(weights_);
    } else if (staged_ && spec_.flip) {
        staged_->flip();  // the caller's tensors: staging copied over them
    } else if (staged_) {
        staged_->commit();
    } else if (memory_ && spec_.flip) {
        memory_->flip();  // staging copied over live: the only work while the readers wait
    } else if (memory_) {
        memory_->commit();  // with staging: staging and live trade places
    }
    if (on_point_) on_point_(protocol::Point::kApplying, version);
    runHooks(version);
}

protocol::InferenceWork::Restored InferenceAgent::restore(uint64_t held, bool applied) {
    protocol::InferenceWork::Restored r;
    if (swap_) {
        // Swapped: staging (live until the swap) still holds `held`; swap back. Unswapped,
        // every write went to staging: live is untouched.
        if (swapped_) {
            memory_->swap();
            swapped_ = false;
            bindLive();
            if (readers_) readers_->rebind(weights_);
            if (held > 0) runHooks(held);
        }
        r.intact = true;
    } else if (writesArena() && spec_.flip) {
        // Unapplied, every write went to staging: live is untouched. Once flipped, the version
        // before is in neither copy (only verification can say more).
        r.intact = !applied;
    } else if (writesArena() && spec_.staging) {
        if (applied) {
            // live holds `held` again, staging the failed version
            if (memory_) {
                memory_->rollback();
            } else {
                staged_->rollback();
            }
            if (held > 0) runHooks(held);
        }
        r.intact = true;  // unapplied, every write went to staging: live is untouched
    }
    // The filesystem transport reads into live tensors only in apply().
    if (checkpoint_ && !applied) r.intact = true;
    // Verification tells whether the live weights hold `held` (the only way to know in place).
    if (spec_.verify && held > 0) {
        int64_t checked = 0;
        r.mismatched_bytes = verify(held, checked);
        r.intact = r.mismatched_bytes == 0;
    }
    return r;
}

StepResult InferenceAgent::serveStep(uint64_t version) {
    check(session_ != nullptr, Errc::kProtocol, "inference {}: serveStep() before init()",
          peer_.name);
    check(version > std::max(version_, attempted_), Errc::kProtocol,
          "inference {}: asked to serve version {}, but it took part in version {} already",
          peer_.name, version, std::max(version_, attempted_));
    attempted_ = version;
    swapped_ = false;
    StepResult r;
    r.version = version;
    Work work(*this);
    protocol::InferenceVersion v;
    try {
        v = protocol::runInferenceVersion(*session_, spec_, peer_.name, version, version_, work,
                                          &cancelled_);
    } catch (const Error &e) {
        if (metrics_) metrics_->failed(e.code());
        throw;
    }
    version_ = version;
    if (metrics_) {
        // Every destination byte of the rank is written once per version.
        int64_t bytes = 0;
        for (const planner::LocalTensor &t : weights_.tensors) bytes += t.bytes;
        metrics_->received(version, v.committed, bytes, v.wait_seconds, v.hook_seconds);
    }
    r.committed = v.committed;
    r.swapped = v.swapped;
    if (prunes_) {
        const std::vector<std::string> removed =
            pruneCheckpoints(spec_.fs_root, version, spec_.fs_keep);
        if (!removed.empty()) {
            logger("inference")
                ->info("{}: retention (keep {}): removed {}", peer_.name, spec_.fs_keep,
                       fmt::join(removed, ", "));
        }
    }
    r.wait_seconds = v.wait_seconds;
    r.hook_seconds = v.hook_seconds;
    r.check_seconds = v.check_seconds;
    r.paused_seconds = v.paused_seconds;
    r.probe_gap_seconds = v.probe_gap_seconds;
    // Verification reads the weights like any forward pass does, after resuming, so it is not
    // part of the update's pause.
    if (spec_.verify) {
        const auto t0 = Clock::now();
        r.mismatched_bytes = verify(version, r.checked_bytes);
        r.verified = r.mismatched_bytes == 0;
        r.verify_seconds = secondsSince(t0);
        session_->publish(keys::verified(version, peer_.name),
                          protocol::Verified{version, r.verified, r.checked_bytes,
                                             r.mismatched_bytes, r.verify_seconds});
    }
    return r;
}

uint64_t InferenceAgent::nextVersion() const {
    return std::max(std::max(version_, attempted_) + 1, joinable_);
}

void InferenceAgent::leave() {
    if (session_) session_->leave();
}

}  // namespace weightsync::engine
