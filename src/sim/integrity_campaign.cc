#include "sim/integrity_campaign.h"

#include "control/prefix_store.h"
#include "control/tcp_store_client.h"
#include "control/tcp_store_server.h"
#include "engine/inference_agent.h"
#include "engine/job.h"
#include "engine/metrics.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"
#include "engine/trainer_agent.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "sim/synthetic_check.h"
#include "transport/fault/fault_backend.h"
#include "transport/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <thread>

namespace weightsync::sim {

namespace {

using namespace std::chrono_literals;
namespace keys = engine::protocol::keys;

enum class Kind : uint8_t { kClean, kBitFlip, kLostWrite };

struct Fault {
    Kind kind = Kind::kClean;
    int trainer = 0;
    size_t write = 0;        // index in the trainer's plan
    uint64_t byte_seed = 0;  // FaultPolicy::corrupt_byte
};

/// What one participant saw of one version.
struct Seen {
    bool ok = false;
    Errc code = Errc::kInternal;
    std::string error;
    engine::StepResult step;     // inference ranks
    bool kept_previous = false;  // inference: failed, and serves the version before, intact
};

}  // namespace

CampaignResult runIntegrityCampaign(const CampaignOptions &options) {
    const auto start = std::chrono::steady_clock::now();
    CampaignResult result;
    engine::JobSpec spec;
    spec.model = options.model;
    spec.mesh = options.mesh;
    spec.fleet.engines = options.engines;
    const int versions = options.faults + options.clean + 1;  // version 1: a clean warm-up
    spec.steps = versions;
    spec.transport = transport::TransportChoice::kUcx;
    spec.transport_options = {{"transports", "posix,sysv,self"}};
    spec.verify = options.verify;
    spec.staging = true;
    spec.checksum = true;
    spec.planner.stage_bytes = options.stage_bytes;
    spec.init_timeout = 60s;
    spec.step_timeout = 60s;
    spec.validate();

    const layout::Layout layout = engine::jobLayout(spec);
    const planner::Plan plan = planner::buildPlan(layout, spec.mesh, spec.fleet, spec.planner);
    std::vector<int> writers;
    for (const planner::RankPlan &rp : plan.ranks) {
        if (!rp.writes.empty()) writers.push_back(rp.rank);
    }
    check(!writers.empty(), Errc::kInvalidArgument, "campaign: no trainer rank writes anything");

    // The schedule: version 1 clean, then the faulted and clean versions in random order.
    std::mt19937_64 rng(options.seed);
    std::vector<Fault> schedule(static_cast<size_t>(versions) + 1);
    std::vector<Kind> kinds;
    for (int i = 0; i < options.faults; ++i)
        kinds.push_back(i % 2 ? Kind::kLostWrite : Kind::kBitFlip);
    kinds.resize(kinds.size() + static_cast<size_t>(options.clean), Kind::kClean);
    std::shuffle(kinds.begin(), kinds.end(), rng);
    for (size_t i = 0; i < kinds.size(); ++i) {
        Fault &f = schedule[i + 2];
        f.kind = kinds[i];
        if (f.kind == Kind::kClean) continue;
        f.trainer = writers[rng() % writers.size()];
        f.write = rng() % plan.ranks[static_cast<size_t>(f.trainer)].writes.size();
        f.byte_seed = rng();
    }

    control::TcpStoreServer server;
    const auto client = [&] {
        return std::make_shared<control::PrefixStore>(
            "job", std::make_shared<control::TcpStoreClient>(server.host(), server.port(), 10s));
    };
    client()->set(keys::spec(), spec.toJson().dump());

    const int trainers = spec.mesh.ranks();
    const std::vector<planner::PeerSpec> peers =
        planner::fleetPeers(spec.fleet, planner::layoutExperts(layout));
    std::vector<std::vector<Seen>> trainer_seen(static_cast<size_t>(trainers),
                                                std::vector<Seen>(schedule.size()));
    std::vector<std::vector<Seen>> peer_seen(peers.size(), std::vector<Seen>(schedule.size()));
    std::vector<std::string> thread_failures(static_cast<size_t>(trainers) + peers.size());

    std::vector<std::thread> threads;
    for (size_t p = 0; p < peers.size(); ++p) {
        threads.emplace_back([&, p] {
            try {
                engine::InferenceOptions o;
                if (options.verify) o.check = std::make_shared<SyntheticCheck>();
                auto store = client();
                engine::InferenceAgent agent(store, peers[p].engine, peers[p].rank, std::move(o));
                agent.init();
                for (int v = 1; v <= versions; ++v) {
                    Seen &s = peer_seen[p][static_cast<size_t>(v)];
                    const uint64_t before = agent.version();
                    try {
                        s.step = agent.serveStep(static_cast<uint64_t>(v));
                        s.ok = true;
                    } catch (const Error &e) {
                        s.code = e.code();
                        s.error = e.what();
                        const auto raw = store->get(
                            keys::aborted(static_cast<uint64_t>(v),
                                          engine::protocol::inferenceName(peers[p].name)));
                        if (raw) {
                            const auto a = engine::protocol::decode<engine::protocol::Aborted>(
                                *raw, static_cast<uint64_t>(v), "aborted");
                            s.kept_previous = a.intact && a.serving && a.held == before &&
                                              agent.version() == before;
                        }
                    }
                }
                agent.leave();
            } catch (const std::exception &e) {
                thread_failures[static_cast<size_t>(trainers) + p] =
                    fmt::format("inference {}: {}", peers[p].name, e.what());
            }
        });
    }
    for (int t = 0; t < trainers; ++t) {
        threads.emplace_back([&, t] {
            try {
                engine::TrainerAgent agent(client(), t);
                transport::FaultInjectingBackend *fault = nullptr;
                agent.useBackends([&](const std::string &name, const nlohmann::json &o) {
                    auto b = std::make_unique<transport::FaultInjectingBackend>(
                        transport::makeBackend(name, o), transport::FaultPolicy{});
                    fault = b.get();
                    return b;
                });
                agent.init();
                for (int v = 1; v <= versions; ++v) {
                    const Fault &f = schedule[static_cast<size_t>(v)];
                    if (fault != nullptr) {
                        transport::FaultPolicy policy;
                        if (f.kind != Kind::kClean && f.trainer == t) {
                            const uint64_t index = fault->writesSeen() + f.write + 1;
                            if (f.kind == Kind::kBitFlip) {
                                policy.corrupt_write = index;
                                policy.corrupt_byte = f.byte_seed;
                            } else {
                                policy.lose_write = index;
                            }
                        }
                        fault->setPolicy(policy);
                    }
                    Seen &s = trainer_seen[static_cast<size_t>(t)][static_cast<size_t>(v)];
                    try {
                        (void)agent.push(static_cast<uint64_t>(v));
                        s.ok = true;
                    } catch (const Error &e) {
                        s.code = e.code();
                        s.error = e.what();
                    }
                }
                agent.leave();
            } catch (const std::exception &e) {
                thread_failures[static_cast<size_t>(t)] =
                    fmt::format("trainer {}: {}", t, e.what());
            }
        });
    }
    for (std::thread &th : threads) th.join();
    for (const std::string &f : thread_failures) {
        if (!f.empty()) result.problems.push_back(f);
    }

    for (int v = 2; v <= versions; ++v) {
        const Fault &f = schedule[static_cast<size_t>(v)];
        const auto vi = static_cast<size_t>(v);
        bool all_ok = true, any_ok = false;
        for (const auto &seen : trainer_seen) {
            all_ok = all_ok && seen[vi].ok;
            any_ok = any_ok || seen[vi].ok;
        }
        for (const auto &seen : peer_seen) {
            all_ok = all_ok && seen[vi].ok;
            any_ok = any_ok || seen[vi].ok;
        }
        ++result.versions;
        if (any_ok && !all_ok) {
            result.problems.push_back(
                fmt::format("version {}: committed on some participants only", v));
        }
        if (all_ok) {
            bool verified = options.verify, mismatched = false;
            for (const auto &seen : peer_seen) {
                verified = verified && seen[vi].step.verified;
                mismatched = mismatched || seen[vi].step.mismatched_bytes != 0;
            }
            result.verified += verified ? 1 : 0;
            result.mismatched_versions += mismatched ? 1 : 0;
        } else {
            bool kept = true;
            for (const auto &seen : peer_seen) kept = kept && seen[vi].kept_previous;
            result.previous_kept += kept ? 1 : 0;
        }
        std::string summary;
        if (f.kind == Kind::kClean) {
            ++result.clean;
            if (all_ok) {
                ++result.committed_clean;
            } else {
                ++result.false_alarms;
                result.problems.push_back(
                    fmt::format("version {} (clean) failed: {}", v, trainer_seen[0][vi].error));
            }
            summary = all_ok ? "clean, committed" : "clean, FAILED";
        } else {
            ++result.faults;
            (f.kind == Kind::kBitFlip ? result.bit_flips : result.lost_writes) += 1;
            const planner::Write &w = plan.ranks[static_cast<size_t>(f.trainer)].writes[f.write];
            const std::string name = planner::localTensors(layout, plan.peers[w.peer])[w.dest].name;
            const std::string where =
                fmt::format("'{}' bytes [{}, {}) written by trainer rank {}", name, w.dest_offset,
                            w.dest_offset + w.bytes, f.trainer);
            const Seen &t0 = trainer_seen[0][vi];
            const bool detected = !t0.ok && t0.code == Errc::kCorruption &&
                                  t0.error.find("checksum mismatch") != std::string::npos;
            if (detected) {
                ++result.detected;
                if (t0.error.find(where) != std::string::npos) {
                    ++result.named_exactly;
                } else {
                    result.problems.push_back(
                        fmt::format("version {}: detected, but the error does not name {}: {}", v,
                                    where, t0.error));
                }
                if (result.examples.size() < 3) result.examples.push_back(t0.error);
            } else if (all_ok) {
                ++result.missed;
                bool harmless = options.verify;
                for (const auto &seen : peer_seen) harmless = harmless && seen[vi].step.verified;
                result.missed_harmless += harmless ? 1 : 0;
                if (!harmless) {
                    result.problems.push_back(fmt::format(
                        "version {}: {} of {} missed", v,
                        f.kind == Kind::kBitFlip ? "a flipped bit" : "a lost write", where));
                }
            } else {
                result.problems.push_back(
                    fmt::format("version {}: failed without a checksum mismatch: {}", v, t0.error));
            }
            summary =
                fmt::format("{} in {}: {}", f.kind == Kind::kBitFlip ? "bit flip" : "lost write",
                            where, detected ? "detected" : (all_ok ? "MISSED" : "failed"));
        }
        if (options.progress) options.progress(static_cast<uint64_t>(v), summary);
    }
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace weightsync::sim
