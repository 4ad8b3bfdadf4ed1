#include "engine/trainer_agent.h"

#include "common/error.h"
#include "common/host.h"
#include "common/json.h"
#include "common/log.h"
#include "engine/endpoints.h"
#include "engine/landed_notices.h"
#include "engine/messages.h"
#include "engine/protocol/version.h"
#include "layout/registry.h"
#include "planner/geometry.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace weightsync::engine {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace keys = protocol::keys;

TrainerAgent::TrainerAgent(std::shared_ptr<control::Store> store, int rank)
    : store_(std::move(store)), rank_(rank) {}

TrainerAgent::TrainerAgent(std::shared_ptr<control::Store> store, int rank,
                           std::shared_ptr<const convert::SourceProvider> sources)
    : store_(std::move(store)), rank_(rank), external_(std::move(sources)) {}

TrainerAgent::Link &TrainerAgent::link(const std::string &name) {
    auto it = links_.find(name);
    if (it != links_.end()) return it->second;
    Link l;
    Arena &arena = compute_->arena();  // on the GPU of the rank's weights, or in host memory
    l.backend = make_backend_(name, backendOptions(spec_, name, arena.device()));
    if (arena.size() > 0) {  // ranks of other HSDP replicas write nothing
        l.region =
            l.backend->registerMemory(arena.data(), arena.size(), arena.kind(), arena.device());
    }
    return links_.emplace(name, std::move(l)).first->second;
}

TrainerAgent::~TrainerAgent() = default;

void TrainerAgent::failInit(const Error &e) {
    // The first failure wins; later ones keep the original cause visible.
    try {
        session_->failInit(e.code(), fmt::format("trainer rank {}: {}", rank_, e.what()));
    } catch (const Error &) {
        // The coordinator may be the thing that failed.
    }
    throw e;
}

void TrainerAgent::init() {
    spec_ = JobSpec::parse(store_->wait(keys::spec(), std::chrono::seconds(60)));
    check(rank_ >= 0 && rank_ < spec_.mesh.ranks(), Errc::kInvalidArgument,
          "trainer rank {} outside the job's {} ranks", rank_, spec_.mesh.ranks());
    layout_.emplace(jobLayout(spec_));
    protocol::Roster roster{spec_.mesh.ranks(), {}};
    for (const planner::PeerSpec &p :
         planner::fleetPeers(spec_.fleet, planner::layoutExperts(*layout_))) {
        roster.peers.push_back(p.name);
    }
    session_ = std::make_unique<protocol::Session>(store_, protocol::trainerName(rank_),
                                                   std::move(roster), spec_.retain_versions);
    session_->holdLiveness(spec_.liveness_ttl);
    try {
        rendezvous();
        connectPeers();
    } catch (const Error &e) {
        if (metrics_) metrics_->failed(e.code());
        failInit(e);
    }
    if (metrics_) {
        // The slot arena is all a trainer registers.
        const int64_t arena = plan_->ranks[static_cast<size_t>(rank_)].arena_bytes;
        metrics_->setSlotArenaBytes(arena);
        metrics_->setRegisteredBytes(arena);
    }
}

void TrainerAgent::rendezvous() {
    const layout::Layout &layout = *layout_;
    const auto deadline = Clock::now() + spec_.init_timeout;
    const protocol::AbortOn on{.init = true};
    store_->set(keys::trainerHello(rank_),
                TrainerHello{layout.fingerprint(), spec_.mesh}.toJson().dump());

    // Round 1: every trainer agrees on the layout and mesh; every inference rank's hello matches.
    std::vector<std::string> trainer_keys;
    for (int t = 0; t < spec_.mesh.ranks(); ++t) trainer_keys.push_back(keys::trainerHello(t));
    const auto trainers = session_->await(trainer_keys, deadline, on, "waiting for trainer hellos");
    for (int t = 0; t < spec_.mesh.ranks(); ++t) {
        const TrainerHello h = TrainerHello::fromJson(
            parseJson(trainers[static_cast<size_t>(t)], trainer_keys[static_cast<size_t>(t)]));
        check(h.fingerprint == layout.fingerprint(), Errc::kMismatch,
              "trainer rank {} has layout fingerprint {}, rank {} has {}", t, h.fingerprint, rank_,
              layout.fingerprint());
        check(h.mesh.replicas == spec_.mesh.replicas && h.mesh.fsdp == spec_.mesh.fsdp &&
                  h.mesh.ep == spec_.mesh.ep,
              Errc::kMismatch, "trainer rank {} runs mesh {}x{}x{}, rank {} runs {}x{}x{}", t,
              h.mesh.replicas, h.mesh.fsdp, h.mesh.ep, rank_, spec_.mesh.replicas, spec_.mesh.fsdp,
              spec_.mesh.ep);
    }
    const int64_t experts = planner::layoutExperts(layout);
    planner::Fleet fleet = spec_.fleet;
    const std::vector<planner::PeerSpec> planned = planner::fleetPeers(fleet, experts);
    std::vector<std::string> hello_keys;
    for (const planner::PeerSpec &p : planned) hello_keys.push_back(keys::inferenceHello(p.name));
    const auto hellos = session_->await(hello_keys, deadline, on, "waiting for inference hellos");
    for (size_t i = 0; i < planned.size(); ++i) {
        validateHello(layout, InferenceHello::fromJson(parseJson(hellos[i], hello_keys[i])),
                      planned[i]);
    }

    if (spec_.transport == transport::TransportChoice::kFilesystem) {
        // The plan's one peer is the checkpoint: every destination tensor whole, the writes
        // balanced over the trainer ranks as for any fleet.
        plan_.emplace(
            planner::buildPlan(layout, spec_.mesh, checkpoint::checkpointFleet(), spec_.planner));
        checkpoint_ = std::make_unique<CheckpointWriter>(spec_, layout, *plan_, rank_);
    } else {
        plan_.emplace(planner::buildPlan(layout, spec_.mesh, fleet, spec_.planner));
    }
    const planner::RankPlan &rp = plan_->ranks[static_cast<size_t>(rank_)];
    compute_ = makeTrainerCompute(spec_, layout, rank_, rp, external_);
    check(!checkpoint_ || compute_->arena().kind() == transport::MemoryKind::kHost,
          Errc::kUnsupported,
          "trainer rank {}: transport 'filesystem' writes from host memory; this rank's weights "
          "and slots are on a GPU",
          rank_);
}

void TrainerAgent::connectPeers() {
    const planner::RankPlan &rp = plan_->ranks[static_cast<size_t>(rank_)];
    const auto deadline = Clock::now() + spec_.init_timeout;
    const protocol::AbortOn on{.init = true};
    if (!checkpoint_) {  // the filesystem transport connects to nobody
        writes_to_.assign(plan_->peers.size(), false);
        for (const planner::Write &w : rp.writes) writes_to_[w.peer] = true;
        std::vector<std::string> memory_keys;
        for (const planner::PeerSpec &p : plan_->peers) memory_keys.push_back(keys::memory(p.name));
        const auto records =
            session_->await(memory_keys, deadline, on, "waiting for inference memory descriptors");
        targets_.assign(plan_->peers.size(), {});
        copy_.assign(plan_->peers.size(), 0);
        imported_.resize(plan_->peers.size());
        generations_.assign(plan_->peers.size(), 0);
        // Validate every peer, also those this rank does not write: init fails everywhere or
        // nowhere.
        for (size_t q = 0; q < plan_->peers.size(); ++q) {
            connectPeer(q, MemoryRecord::fromJson(parseJson(records[q], memory_keys[q])));
        }
        pairPeers(deadline);
    }
    store_->set(keys::trainerReady(rank_), "1");
    std::vector<std::string> ready;
    for (int t = 0; t < spec_.mesh.ranks(); ++t) ready.push_back(keys::trainerReady(t));
    (void)session_->await(ready, deadline, on, "waiting for every trainer to be ready");
    logger("trainer")->info("rank {}: ready, {} slots ({} bytes), {} writes per push", rank_,
                            rp.slots.size(), rp.arena_bytes, rp.writes.size());
}

void TrainerAgent::connectPeer(size_t q, const MemoryRecord &record) {
    const planner::PeerSpec &peer = plan_->peers[q];
    validateMemory(planner::localTensors(*layout_, peer), record, peer.name);
    generations_[q] = record.generation;
    targets_[q].clear();
    imported_[q].clear();  // a former process's regions are never written again
    if (!writes_to_[q]) return;
    const std::string name =
        chooseBackend(spec_, record, hostIdentity(), compute_->arena().kind(), peer.name);
    Link &l = link(name);
    const Endpoint &ep = *record.endpoint(name);
    l.backend->connect(peer.name, ep.address);
    std::vector<transport::RemoteRegion *> regions;
    for (const transport::RemoteDescriptor &d : ep.regions) {
        imported_[q].push_back(l.backend->importRegion(peer.name, d));
        regions.push_back(imported_[q].back().get());
    }
    // validateMemory checked that the regions split into the copies, each holding every chunk.
    const size_t per_copy = regions.size() / record.copies;
    for (const TensorMemory &t : record.tensors) {
        const Chunk &c = t.chunks.front();
        Target target{&l, {}, c.offset};
        for (size_t k = 0; k < record.copies; ++k) {
            target.regions.push_back(regions[c.region + k * per_copy]);
        }
        targets_[q].push_back(std::move(target));
    }
    logger("trainer")->info("rank {}: writes to {} (generation {}) through {}", rank_, peer.name,
                            record.generation, name);
}

void TrainerAgent::pairPeers(Clock::time_point deadline) {
    // Two-sided transports: a pair with every peer this rank writes into, its token published
    // for the peer first, then formed peer by peer in ascending order (the receivers pair with
    // their writers in ascending rank order: the pairs form in one global order, no cycle).
    std::vector<std::pair<size_t, std::string>> tokens;
    for (size_t q = 0; q < plan_->peers.size(); ++q) {
        if (!writes_to_[q] || targets_[q].empty()) continue;
        transport::TransportBackend &b = *targets_[q].front().link->backend;
        if (!b.capabilities().two_sided) continue;
        tokens.emplace_back(q, b.makePairToken());
        store_->set(keys::pairToken(rank_, plan_->peers[q].name), tokens.back().second);
    }
    for (const auto &[q, token] : tokens) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        targets_[q].front().link->backend->pair(plan_->peers[q].name, token, /*writer=*/true,
                                                std::max(left, std::chrono::milliseconds(1)));
    }
}

void TrainerAgent::refreshPeers() {
    if (spec_.rejoin_timeout.count() == 0) return;  // nobody rejoins: the records are the same
    if (checkpoint_) return;                        // nobody is written into
    for (size_t q = 0; q < plan_->peers.size(); ++q) {
        const std::string &peer = plan_->peers[q].name;
        const auto raw = session_->cached(keys::memory(peer));
        if (!raw) continue;
        const MemoryRecord record = MemoryRecord::fromJson(parseJson(*raw, keys::memory(peer)));
        if (record.generation == generations_[q]) continue;
        check(record.generation > generations_[q], Errc::kProtocol,
              "trainer rank {}: inference rank {} published memory of generation {}, older "
              "than generation {} imported before: a stale descriptor is never written into",
              rank_, peer, record.generation, generations_[q]);
        const auto hello = session_->cached(keys::inferenceHello(peer));
        check(hello.has_value(), Errc::kProtocol,
              "trainer rank {}: inference rank {} rejoined without a hello", rank_, peer);
        validateHello(*layout_,
                      InferenceHello::fromJson(parseJson(*hello, keys::inferenceHello(peer))),
                      plan_->peers[q]);
        logger("trainer")->warn("rank {}: inference rank {} rejoined", rank_, peer);
        connectPeer(q, record);
    }
}

void TrainerAgent::chooseCopies(const std::vector<std::pair<std::string, uint32_t>> &copies) {
    if (checkpoint_) return;  // the filesystem transport writes files
    for (size_t q = 0; q < plan_->peers.size(); ++q) {
        const std::string &peer = plan_->peers[q].name;
        const auto it = std::find_if(copies.begin(), copies.end(),
                                     [&](const auto &c) { return c.first == peer; });
        check(it != copies.end(), Errc::kProtocol,
              "trainer rank {}: no paused message of inference rank {}", rank_, peer);
        copy_[q] = it->second;
        if (targets_[q].empty()) continue;  // not written by this rank
        const size_t have = targets_[q].front().regions.size();
        check(it->second < have, Errc::kProtocol,
              "trainer rank {}: inference rank {} asks for writes into copy {} of its memory, "
              "its memory record has {}",
              rank_, peer, it->second, have);
    }
}

void TrainerAgent::writeStage(size_t &next_write, uint32_t stage, PushMetrics &m) {
    const planner::RankPlan &rp = plan_->ranks[static_cast<size_t>(rank_)];
    const auto start = Clock::now();
    const size_t first = next_write;
    while (next_write < rp.writes.size() && rp.writes[next_write].stage <= stage) {
        const planner::Write &w = rp.writes[next_write++];
        if (!checkpoint_) {
            const Target &t = targets_[w.peer][w.dest];
            t.link->backend->postWrite(
                *t.link->region, static_cast<size_t>(w.src_offset), *t.regions[copy_[w.peer]],
                t.offset + static_cast<size_t>(w.dest_offset), static_cast<size_t>(w.bytes));
        }
        m.wire_bytes += w.bytes;
        ++m.writes;
    }
    if (checkpoint_) checkpoint_->write(first, next_write);  // the stage's writes, on a few threads
    for (auto &[name, l] : links_) l.backend->submit();      // two-sided: the stage as one batch
    m.post_seconds += secondsSince(start);
}

/// The data work of one version: convert stage by stage and post each stage's writes as soon as
/// its slots are filled (on a GPU the next stage converts while the previous one's writes fly;
/// without pipelining, every stage converts first and every write follows), then flush.
class TrainerAgent::Transfer : public protocol::TrainerWork {
  public:
    explicit Transfer(TrainerAgent &agent) : agent_(agent) {}
    void transfer(uint64_t version, PushMetrics &m) override {
        agent_.transfer(version, m);
        if (agent_.checkpoint_) agent_.finishCheckpoint(version, m);
    }
    void at(protocol::Point point, uint64_t version) override { agent_.at(point, version); }
    void targets(const std::vector<std::pair<std::string, uint32_t>> &copies) override {
        agent_.refreshPeers();  // a peer that rejoined names a copy of its new memory
        agent_.chooseCopies(copies);
    }
    std::vector<uint64_t> takeChecksums() override {
        if (!agent_.spec_.checksum) return {};
        return agent_.compute_->takeChecksums();
    }

  private:
    TrainerAgent &agent_;
};

void TrainerAgent::transfer(uint64_t version, PushMetrics &m) {
    try {
        transferStages(version, m);
    } catch (...) {
        abandonWrites();
        throw;
    }
}

void TrainerAgent::abandonWrites() noexcept {
    const auto timeout = std::min(spec_.step_timeout, std::chrono::milliseconds(2000));
    for (auto &[name, l] : links_) {
        try {
            (void)l.backend->flush(timeout);
        } catch (...) {
            // The version failed already; these writes' own errors add nothing.
        }
    }
}

void TrainerAgent::transferStages(uint64_t version, PushMetrics &m) {
    const planner::RankPlan &rp = plan_->ranks[static_cast<size_t>(rank_)];
    if (checkpoint_) checkpoint_->begin(version, rank_ == 0, compute_->arena().data());
    size_t next_op = 0;
    size_t next_write = 0;
    size_t next_checksum = 0;  // the first write whose checksum is not started yet
    if (spec_.checksum) (void)compute_->takeChecksums();  // nothing left of a failed version
    // Checksums of the writes whose bytes the stages converted so far (their ops all ran).
    const auto checksum_through = [&](uint32_t stage) {
        if (!spec_.checksum) return;
        const size_t first = next_checksum;
        while (next_checksum < rp.writes.size() && rp.writes[next_checksum].stage <= stage) {
            ++next_checksum;
        }
        compute_->checksumWrites(first, next_checksum - first);
    };
    // With checksums, receivers learn stage by stage which writes landed (and checksum them
    // beside the wire) instead of all at the done.
    std::optional<LandedNotices> notices;
    std::vector<transport::TransportBackend *> backends;
    if (spec_.checksum && !checkpoint_) {
        notices.emplace([&](uint64_t notice, int64_t writes) {
            session_->publish(keys::staged(version, notice, rank_),
                              protocol::WritesLanded{version, writes});
        });
        for (auto &[name, l] : links_) backends.push_back(l.backend.get());
    }
    const auto posted = [&] {
        if (!notices) return;
        notices->posted(static_cast<int64_t>(next_write), backends);
        notices->poll();
    };
    std::optional<std::pair<uint32_t, uint64_t>> pending;  // (stage, fence) not yet posted
    auto t0 = Clock::now();
    const auto drain_pending = [&] {
        if (!pending) return;
        t0 = Clock::now();
        compute_->waitFence(pending->second);
        m.convert_seconds += secondsSince(t0);
        if (spec_.pipeline) {
            writeStage(next_write, pending->first, m);
            posted();
        }
        pending.reset();
    };
    while (next_op < rp.ops.size()) {
        const uint32_t stage = rp.ops[next_op].stage;
        size_t end = next_op;
        while (end < rp.ops.size() && rp.ops[end].stage == stage) ++end;
        t0 = Clock::now();
        const uint64_t fence = compute_->convert(std::span(rp.ops).subspan(next_op, end - next_op));
        checksum_through(stage);
        m.convert_seconds += secondsSince(t0);
        next_op = end;
        if (spec_.pipeline) drain_pending();
        pending.emplace(stage, fence);
        if (stage == rp.ops.front().stage) at(protocol::Point::kConverting, version);
    }
    drain_pending();
    checksum_through(UINT32_MAX);            // writes of no op's stage (none in a valid plan)
    at(protocol::Point::kWriting, version);  // some stages' writes posted, none flushed
    writeStage(next_write, UINT32_MAX, m);
    t0 = Clock::now();
    if (notices) {
        posted();
        notices->drain(Clock::now() + spec_.step_timeout);  // the last stages' notices
    }
    for (auto &[name, l] : links_) (void)l.backend->flush(spec_.step_timeout);
    if (checkpoint_) written_ranges_ = checkpoint_->sync();
    m.drain_seconds = secondsSince(t0);
}

void TrainerAgent::finishCheckpoint(uint64_t version, PushMetrics &m) {
    if (rank_ != 0) {
        session_->publish(keys::checkpointRanges(version, rank_),
                          protocol::CheckpointRanges{version, std::move(written_ranges_)});
        return;
    }
    std::vector<std::string> others;
    for (int t = 1; t < spec_.mesh.ranks(); ++t) {
        others.push_back(keys::done(version, t));
        others.push_back(keys::checkpointRanges(version, t));
    }
    const std::vector<std::string> values = session_->await(
        others, Clock::now() + spec_.step_timeout,
        protocol::AbortOn{.version = version, .lost_needed_only = spec_.rejoin_timeout.count() > 0},
        fmt::format("version {}: waiting for every trainer's checkpoint writes", version));
    std::vector<checkpoint::HashedRange> ranges = std::move(written_ranges_);
    for (size_t i = 1; i < values.size(); i += 2) {
        const auto theirs =
            protocol::decode<protocol::CheckpointRanges>(values[i], version, others[i]).ranges;
        ranges.insert(ranges.end(), theirs.begin(), theirs.end());
    }
    // Part of the write phase (the version is written once its manifest is); the wait for the
    // other ranks above is not: their own writes are in their metrics.
    const auto t0 = Clock::now();
    checkpoint_->finalize(version, std::move(ranges));
    m.finalize_seconds = secondsSince(t0);
    logger("trainer")->info("rank 0: version {} checkpoint final in {:.3f} s", version,
                            m.finalize_seconds);
}

PushMetrics TrainerAgent::push(uint64_t version) {
    check(session_ != nullptr, Errc::kProtocol, "trainer rank {}: push() before init()", rank_);
    check(version > attempted_, Errc::kProtocol,
          "trainer rank {}: asked to push version {}, but version {} was pushed before (a version "
          "number is used once, also when it failed)",
          rank_, version, attempted_);
    attempted_ = version;
    // The optimizer step: new weights in place (not part of the update's cost).
    const auto t0 = Clock::now();
    compute_->generate(version);  // the caller's weights are already in place
    const double generate_seconds = secondsSince(t0);
    Transfer work(*this);
    try {
        PushMetrics m =
            protocol::runTrainerVersion(*session_, spec_, rank_, version, version_, work);
        m.generate_seconds = generate_seconds;
        version_ = version;
        if (metrics_) metrics_->pushed(m);
        return m;
    } catch (const Error &e) {
        if (metrics_) metrics_->failed(e.code());
        try {
            const auto o = session_->outcome(version);
            if (o && o->commit) version_ = version;  // it stands: a receiver was lost after it
        } catch (const Error &) {
        }
        throw;
    }
}

void TrainerAgent::leave() {
    if (session_) session_->leave();
}

}  // namespace weightsync::engine
