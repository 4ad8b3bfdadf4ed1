#include "engine/protocol/version.h"

#include "common/log.h"
#include "control/wire.h"

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <optional>
#include <vector>

namespace weightsync::engine::protocol {

namespace {

/// The error in flight as (code, message); anything not a weightsync::Error is kInternal.
std::pair<Errc, std::string> currentError() {
    try {
        throw;
    } catch (const Error &e) {
        return {e.code(), std::string(control::wire::bareMessage(e))};
    } catch (const std::exception &e) {
        return {Errc::kInternal, e.what()};
    } catch (...) {
        return {Errc::kInternal, "unknown error"};
    }
}

/// Proposes abort with our own cause; returns the version's outcome (ours, or an earlier one).
/// Without a reachable store the outcome is unknown.
std::optional<Outcome> proposeAbort(Session &s, uint64_t version, Errc code,
                                    const std::string &cause) {
    try {
        return s.decide({version, false, s.self(), code, cause});
    } catch (const Error &e) {
        logger("protocol")
            ->error("{}: cannot reach the store to abort version {}: {}", s.self(), version,
                    e.what());
        return std::nullopt;
    }
}

/// The error to throw for an aborted version: its first cause, and ours when it differs.
[[noreturn]] void throwAborted(const Session &s, uint64_t version, const Outcome &o,
                               const std::string &ours) {
    if (o.by == s.self() || ours.find(o.reason) != std::string::npos) throw Error(o.code, ours);
    fail(o.code, "{}: version {} was aborted by {}: {} (here: {})", s.self(), version, o.by,
         o.reason, ours);
}

constexpr std::pair<Point, std::string_view> kPoints[] = {
    {Point::kBeforeRequest, "before-request"},
    {Point::kPaused, "paused"},
    {Point::kConverting, "converting"},
    {Point::kWriting, "writing"},
    {Point::kDone, "done"},
    {Point::kLanded, "landed"},
    {Point::kApplying, "applying"},
    {Point::kPrepared, "prepared"},
    {Point::kResuming, "resuming"},
};

}  // namespace

std::string_view pointName(Point point) {
    for (const auto &[p, name] : kPoints) {
        if (p == point) return name;
    }
    return "unknown";
}

Point parsePoint(std::string_view name) {
    std::vector<std::string_view> names;
    for (const auto &[p, n] : kPoints) {
        if (n == name) return p;
        names.push_back(n);
    }
    fail(Errc::kInvalidArgument, "unknown protocol point '{}' (known: {})", name,
         fmt::join(names, ", "));
}

/// What ends a wait of `version` early: with rejoining allowed, only a lost participant the
/// wait needs (the others may come back).
AbortOn during(const JobSpec &spec, uint64_t version) {
    return AbortOn{.version = version, .lost_needed_only = spec.rejoin_timeout.count() > 0};
}

/// Waits for every trainer's done and checks each trainer's writes (in trainer rank order) as
/// soon as its done arrives, while others still write. With checksums, a trainer's staged
/// notices arrive before its done, and the writes they name are checksummed meanwhile, beside
/// the wire. Returns the seconds spent checking.
double awaitWrites(Session &s, const JobSpec &spec, const std::string &who, uint64_t version,
                   Clock::time_point deadline, const AbortOn &on, InferenceWork &work) {
    const std::vector<std::string> done_keys = s.forTrainers(keys::done, version);
    const size_t trainers = done_keys.size();
    std::vector<uint64_t> next_notice(trainers, 1);  // the staged notice awaited next
    std::vector<bool> done_seen(trainers, false);
    double check_seconds = 0;
    const std::string what =
        fmt::format("{}: version {}: waiting for every trainer's writes", who, version);
    for (size_t checked = 0; checked < trainers;) {
        // The next trainer in rank order to check, and, with checksums, every trainer's next
        // notice until its done.
        std::vector<std::string> wanted{done_keys[checked]};
        for (size_t t = 0; spec.checksum && t < trainers; ++t) {
            if (!done_seen[t]) {
                wanted.push_back(keys::staged(version, next_notice[t], static_cast<int>(t)));
            }
        }
        (void)s.awaitAny(wanted, deadline, on, what);
        for (size_t t = 0; spec.checksum && t < trainers; ++t) {
            if (done_seen[t]) continue;
            while (const auto raw =
                       s.cached(keys::staged(version, next_notice[t], static_cast<int>(t)))) {
                const auto staged = decode<WritesLanded>(
                    *raw, version, keys::staged(version, next_notice[t], static_cast<int>(t)));
                ++next_notice[t];
                const auto c0 = Clock::now();
                work.writesLanded(version, static_cast<int>(t), staged.writes);
                check_seconds += secondsSince(c0);
            }
            done_seen[t] = s.cached(done_keys[t]).has_value();
        }
        while (checked < trainers && s.cached(done_keys[checked])) {
            const Done done =
                decode<Done>(*s.cached(done_keys[checked]), version, done_keys[checked]);
            done_seen[checked] = true;
            const auto c0 = Clock::now();
            work.checkWrites(version, static_cast<int>(checked), done);
            check_seconds += secondsSince(c0);
            ++checked;
        }
    }
    return check_seconds;
}

PushMetrics runTrainerVersion(Session &s, const JobSpec &spec, int rank, uint64_t version,
                              uint64_t committed, TrainerWork &work) {
    PushMetrics m;
    m.version = version;
    m.rank = rank;
    const AbortOn on = during(spec, version);
    bool decided_commit = false;
    try {
        work.at(Point::kBeforeRequest, version);
        if (rank == 0) {
            // The last committed version is checked everywhere before the next may overwrite it.
            if (spec.verify && committed > 0) {
                (void)s.await(s.forPeers(keys::verified, committed),
                              Clock::now() + spec.step_timeout, on,
                              fmt::format("version {}: waiting for the verification of {}", version,
                                          committed));
            }
            s.publish(keys::request(version), Request{version});
            s.store().set(keys::latest(), std::to_string(version));
        } else {
            (void)s.await({keys::request(version)}, Clock::now() + spec.step_timeout, on,
                          fmt::format("version {}: waiting for the request", version));
        }
        // From the request on, the whole version must end within the step timeout.
        const auto start = Clock::now();
        const auto deadline = start + spec.step_timeout;
        // A lost inference rank may rejoin before the rejoin timeout: its new process pauses.
        AbortOn pausing = on;
        pausing.lost_grace_until = start + spec.rejoin_timeout;
        const auto paused = s.awaitAll<Paused>(
            s.forPeers(keys::paused, version), version, deadline, pausing,
            fmt::format("version {}: waiting for every inference rank to pause", version));
        for (size_t q = 0; q < paused.size(); ++q) {
            check(paused[q].held <= committed, Errc::kProtocol,
                  "version {}: inference rank {} holds version {}, but version {} is the last "
                  "that committed",
                  version, s.roster().peers[q], paused[q].held, committed);
        }
        m.pause_seconds = secondsSince(start);

        std::vector<std::pair<std::string, uint32_t>> copies;
        for (size_t q = 0; q < paused.size(); ++q) {
            copies.emplace_back(s.roster().peers[q], paused[q].target);
        }
        work.targets(copies);
        work.transfer(version, m);
        s.publish(keys::done(version, rank),
                  Done{version, m.wire_bytes, m.writes, work.takeChecksums()});
        work.at(Point::kDone, version);

        const auto t0 = Clock::now();
        (void)s.await({keys::outcome(version)}, deadline, on,
                      fmt::format("version {}: waiting for its outcome", version));
        decided_commit = true;  // the await throws for an abort
        work.at(Point::kResuming, version);
        (void)s.await(s.forPeers(keys::resumed, version), deadline,
                      AbortOn{.lost_needed_only = on.lost_needed_only},
                      fmt::format("version {} (committed): waiting for every inference rank to "
                                  "resume",
                                  version));
        m.barrier_seconds = secondsSince(t0);
        m.total_seconds = secondsSince(start);
        s.publish(keys::metrics(version, rank), m);
    } catch (...) {
        const auto [code, what] = currentError();
        if (decided_commit) throw;  // the version stands; a receiver was lost after it
        const std::optional<Outcome> o = proposeAbort(s, version, code, what);
        try {
            s.publish(keys::aborted(version, trainerName(rank)),
                      Aborted{version, committed, false, false, -1, what});
        } catch (const Error &) {
            // The coordinator itself may be gone.
        }
        if (o && o->commit) {
            fail(Errc::kInternal, "{}: version {} was committed without this rank: {}", s.self(),
                 version, what);
        }
        if (o) throwAborted(s, version, *o, what);
        throw;
    }
    s.finish(version, /*collect=*/rank == 0 && !spec.launcher_collects);
    return m;
}

InferenceVersion runInferenceVersion(Session &s, const JobSpec &spec, const std::string &peer,
                                     uint64_t version, uint64_t held, InferenceWork &work,
                                     const std::atomic<bool> *cancelled) {
    const std::string who = inferenceName(peer);
    // Between versions: the request may be a training step away.
    try {
        work.at(Point::kBeforeRequest, version);
        AbortOn waiting = during(spec, version);
        waiting.newer_request = true;
        waiting.cancelled = cancelled;
        (void)s.await({keys::request(version)}, Clock::now() + spec.step_timeout, waiting,
                      fmt::format("{}: waiting for the request of version {}", who, version));
    } catch (...) {
        if (cancelled != nullptr && cancelled->load()) throw;  // the caller stops: no failure
        // The version fails before it started here: this rank never paused and serves `held`.
        const auto [code, what] = currentError();
        const std::optional<Outcome> o = proposeAbort(s, version, code, what);
        try {
            s.publish(keys::aborted(version, who), Aborted{version, held, true, true, -1, what});
        } catch (const Error &) {
            // The coordinator itself may be gone.
        }
        if (o && !o->commit) throwAborted(s, version, *o, what);
        throw;
    }
    const auto deadline = Clock::now() + spec.step_timeout;
    const AbortOn on = during(spec, version);
    InferenceVersion r;
    bool applied = false;
    // With flip, the readers keep reading live (N-1) while N lands in staging.
    bool paused = false;
    auto paused_at = Clock::now();
    if (!spec.flip) {
        work.pause();
        paused = true;
    }
    try {
        s.publish(keys::paused(version, peer), Paused{version, held, work.writeTarget()});
        work.at(Point::kPaused, version);
        auto t0 = Clock::now();
        work.matchWrites(version, deadline);  // two-sided: before the trainers can be done
        r.check_seconds += awaitWrites(s, spec, who, version, deadline, on, work);
        work.receive(version, deadline);
        // Every byte of every rank is in place before anybody changes its live weights.
        s.publish(keys::landed(version, peer), Landed{version});
        work.at(Point::kLanded, version);
        (void)s.await(
            s.forPeers(keys::landed, version), deadline, on,
            fmt::format("{}: version {}: waiting for every inference rank to land", who, version));
        r.wait_seconds = secondsSince(t0);
        if (!paused) {  // flip: the readers stop only now, for the copy into live
            paused_at = Clock::now();
            work.pause();
            paused = true;
            // Readers may hold the flip back (a Python caller parks them when it calls
            // finish_weight_update()). A version that can no longer commit is never flipped:
            // live keeps `held`, intact, and the rank serves it again.
            check(Clock::now() < deadline, Errc::kTimeout,
                  "{}: version {}: the readers let the flip start {:.1f} s after the step "
                  "timeout ({:.1f} s from the request); the version is abandoned and live "
                  "keeps version {}",
                  who, version, std::chrono::duration<double>(Clock::now() - deadline).count(),
                  std::chrono::duration<double>(spec.step_timeout).count(), held);
            if (const std::optional<Outcome> o = s.outcome(version); o && !o->commit) {
                fail(o->code, "{}: version {} was aborted by {} before its flip: {}", who, version,
                     o->by, o->reason);
            }
        }
        t0 = Clock::now();
        applied = true;
        work.apply(version);
        r.hook_seconds = secondsSince(t0);
        s.publish(keys::prepared(version, peer), Prepared{version, r.wait_seconds, r.hook_seconds});
        work.at(Point::kPrepared, version);
        (void)s.await(s.forPeers(keys::prepared, version), deadline, on,
                      fmt::format("{}: version {}: waiting for every inference rank to apply it",
                                  who, version));
        const Outcome o = s.decide({version, true, who, Errc::kInternal, ""});
        if (!o.commit) {
            fail(o.code, "{}: version {} was aborted by {}: {}", who, version, o.by, o.reason);
        }
    } catch (...) {
        const auto [code, what] = currentError();
        const std::optional<Outcome> o = proposeAbort(s, version, code, what);
        // Committed after all: every rank prepared before a late error of ours (e.g. our own
        // wait timed out just as the last rank prepared). We applied it too: serve it.
        const bool commit = o && o->commit && applied;
        if (!commit) {
            // Serve the held version again only if the live weights hold it exactly, and never
            // when we applied N and do not know the outcome: the others may serve N.
            InferenceWork::Restored restored;
            try {
                restored = work.restore(held, applied);
            } catch (const std::exception &e) {
                logger("protocol")
                    ->error("{}: restoring version {} failed: {}", who, held, e.what());
            }
            const bool intact = restored.intact;
            const bool serving = intact && (o.has_value() || !applied);
            if (serving && paused) work.resume();
            try {
                s.publish(keys::aborted(version, who),
                          Aborted{version, held, intact, serving, restored.mismatched_bytes, what});
            } catch (const Error &) {
                // The coordinator itself may be gone.
            }
            logger("protocol")
                ->warn("{}: version {} failed; holds version {} ({}), {}", who, version, held,
                       intact ? "intact" : "not intact", serving ? "serving it" : "paused");
            if (o) throwAborted(s, version, *o, what);
            throw;
        }
    }
    r.committed = true;
    work.at(Point::kResuming, version);
    work.resume();
    r.paused_seconds = secondsSince(paused_at);
    r.probe_gap_seconds = work.takeProbeGapSeconds();
    r.swapped = work.swapped();
    s.publish(keys::resumed(version, peer),
              Resumed{version, r.wait_seconds, r.hook_seconds, r.paused_seconds,
                      r.probe_gap_seconds, r.swapped});
    s.finish(version, /*collect=*/false);
    return r;
}

}  // namespace weightsync::engine::protocol
