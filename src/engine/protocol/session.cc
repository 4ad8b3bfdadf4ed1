#include "engine/protocol/session.h"

#include "common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace weightsync::engine::protocol {

namespace {

constexpr auto kMaxWatch = std::chrono::seconds(1);  // how often a wait re-checks its own liveness

bool startsWith(const std::string &s, const std::string &prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::vector<std::string> Roster::participants() const {
    std::vector<std::string> out;
    for (int t = 0; t < trainers; ++t) out.push_back(trainerName(t));
    for (const std::string &p : peers) out.push_back(inferenceName(p));
    return out;
}

Session::Session(std::shared_ptr<control::Store> store, std::string self, Roster roster,
                 uint64_t retain)
    : store_(std::move(store)),
      self_(std::move(self)),
      roster_(std::move(roster)),
      retain_(std::max<uint64_t>(retain, 1)) {}

Session::~Session() = default;

void Session::holdLiveness(std::chrono::milliseconds ttl) {
    // A participant that comes back (a restarted engine rank) is alive again.
    store_->erase(keys::lost(self_));
    store_->erase(keys::left(self_));
    seen_.erase(keys::lost(self_));
    seen_.erase(keys::left(self_));
    will_ = store_->lastWill(keys::lost(self_), self_, ttl);
    store_->set(keys::joined(self_), "1");  // a watcher that saw an older lost key learns here
}

bool Session::isLost(const std::string &who) const {
    const auto lost = seen_.find(keys::lost(who));
    if (lost == seen_.end()) return false;
    const auto joined = seen_.find(keys::joined(who));
    return joined == seen_.end() || lost->second.revision > joined->second.revision;
}

std::optional<std::string> Session::cached(const std::string &key) const {
    const auto it = seen_.find(key);
    if (it == seen_.end()) return std::nullopt;
    return it->second.value;
}

void Session::leave() {
    store_->set(keys::left(self_), "1");
    if (will_) will_->withdraw();
}

void Session::refresh(Clock::time_point until) {
    if (!listed_) {
        for (control::KeyValue &kv : store_->list("")) {
            revision_ = std::max(revision_, kv.revision);
            seen_[kv.key] = {std::move(kv.value), kv.revision};
        }
        listed_ = true;
        return;
    }
    if (will_ && !will_->held()) {
        fail(Errc::kPeerLost,
             "{} was declared lost by the coordinator: it did not answer within its liveness "
             "ttl (stopped or hung), and its peers have given up on it",
             self_);
    }
    const auto left =
        std::clamp<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(1), kMaxWatch);
    std::vector<control::KeyValue> changed;
    try {
        changed = store_->watch("", revision_,
                                std::chrono::duration_cast<std::chrono::milliseconds>(left));
    } catch (const Error &e) {
        if (e.code() != Errc::kTimeout) throw;
        return;
    }
    for (control::KeyValue &kv : changed) {
        revision_ = std::max(revision_, kv.revision);
        seen_[kv.key] = {std::move(kv.value), kv.revision};
    }
}

void Session::throwIfAborted(const AbortOn &abort, const std::vector<std::string> &needed,
                             const std::string &what) {
    check(abort.cancelled == nullptr || !abort.cancelled->load(), Errc::kTimeout, "{}: cancelled",
          what);
    if (abort.version != 0) {
        if (auto it = seen_.find(keys::outcome(abort.version)); it != seen_.end()) {
            const Outcome o = decode<Outcome>(it->second.value, abort.version, it->first);
            if (!o.commit) {
                fail(o.code, "{}: version {} was aborted by {}: {}", what, abort.version, o.by,
                     o.reason);
            }
        }
    }
    if (abort.init) {
        if (auto it = seen_.find(keys::initFailed()); it != seen_.end()) {
            const Outcome o = decode<Outcome>(it->second.value, 0, it->first);
            fail(o.code, "{}: the job's start-up failed at {}: {}", what, o.by, o.reason);
        }
    }
    if (abort.lost) {
        // A participant that is gone fails the wait if this wait still needs it, or if it did
        // not leave cleanly (it died or hung in the middle of the job).
        for (auto it = seen_.lower_bound(keys::lostPrefix());
             it != seen_.end() && startsWith(it->first, keys::lostPrefix()); ++it) {
            const std::string who = it->first.substr(keys::lostPrefix().size());
            if (!isLost(who)) continue;  // it came back
            const bool needed_here = std::find(needed.begin(), needed.end(), who) != needed.end();
            if (!needed_here && (abort.lost_needed_only || seen_.contains(keys::left(who)))) {
                continue;
            }
            if (needed_here && Clock::now() < abort.lost_grace_until) continue;  // may rejoin
            const std::string cause =
                who == self_ ? fmt::format("{} itself was declared lost by the coordinator", who)
                             : fmt::format(
                                   "{} is gone (its process ended, or it stopped "
                                   "answering the coordinator)",
                                   who);
            if (abort.version != 0) {
                // Everybody reports the same root cause: the first survivor to see it aborts
                // the version in its name.
                const Outcome o = decide({abort.version, false, self_, Errc::kPeerLost, cause});
                if (!o.commit) {
                    fail(o.code, "{}: version {} was aborted by {}: {}", what, abort.version, o.by,
                         o.reason);
                }
            }
            fail(Errc::kPeerLost, "{}: {}", what, cause);
        }
    }
    if (abort.newer_request) {
        if (auto it = seen_.find(keys::latest()); it != seen_.end()) {
            const uint64_t latest = std::stoull(it->second.value);
            check(latest <= abort.version, Errc::kProtocol,
                  "{}: version {} was requested, but this participant expects version {} next",
                  what, latest, abort.version);
        }
    }
}

std::vector<std::string> Session::await(const std::vector<std::string> &keys,
                                        Clock::time_point deadline, const AbortOn &abort,
                                        const std::string &what) {
    (void)wait(keys, deadline, abort, what, /*any=*/false);
    std::vector<std::string> values;
    values.reserve(keys.size());
    for (const std::string &k : keys) values.push_back(seen_.at(k).value);
    return values;
}

size_t Session::awaitAny(const std::vector<std::string> &keys, Clock::time_point deadline,
                         const AbortOn &abort, const std::string &what) {
    check(!keys.empty(), Errc::kInternal, "{}: waiting for any of no keys", what);
    return wait(keys, deadline, abort, what, /*any=*/true);
}

size_t Session::wait(const std::vector<std::string> &keys, Clock::time_point deadline,
                     const AbortOn &abort, const std::string &what, bool any) {
    const auto start = Clock::now();
    for (;;) {
        std::vector<std::string> missing;
        size_t first = keys.size();
        for (size_t i = 0; i < keys.size(); ++i) {
            if (!seen_.contains(keys[i])) {
                missing.push_back(keys[i]);
            } else if (first == keys.size()) {
                first = i;
            }
        }
        std::vector<std::string> needed;
        for (const std::string &k : missing) needed.push_back(participantOf(k));
        if (listed_) throwIfAborted(abort, needed, what);
        if (listed_ && (missing.empty() || (any && first < keys.size()))) {
            return any ? first : 0;
        }
        if (listed_ && Clock::now() >= deadline) {
            std::set<std::string> who(needed.begin(), needed.end());
            who.erase("");
            // A participant that refused its own input says why it is not there.
            std::string refusals;
            for (const std::string &w : who) {
                if (auto it = seen_.find(keys::initRefused(w)); it != seen_.end()) {
                    refusals += fmt::format("; {} refused its input: {}", w, it->second.value);
                }
            }
            fail(Errc::kTimeout, "{}: timed out after {:.1f} s; still missing {} key(s){}{}{}",
                 what, std::chrono::duration<double>(Clock::now() - start).count(), missing.size(),
                 who.empty() ? "" : " from ", fmt::join(who, ", "), refusals);
        }
        refresh(deadline);
    }
}

Outcome Session::decide(const Outcome &proposal) {
    const std::string key = keys::outcome(proposal.version);
    if (!store_->compareSet(key, std::nullopt, encode(proposal))) {
        const auto current = store_->get(key);
        check(current.has_value(), Errc::kInternal, "the outcome of version {} vanished",
              proposal.version);
        seen_[key] = {*current, 0};
        return decode<Outcome>(*current, proposal.version, key);
    }
    seen_[key] = {encode(proposal), 0};
    if (!proposal.commit) {
        logger("protocol")
            ->warn("{}: aborts version {}: {}", self_, proposal.version, proposal.reason);
    }
    return proposal;
}

std::optional<Outcome> Session::outcome(uint64_t version) {
    const std::string key = keys::outcome(version);
    auto value = store_->get(key);
    if (!value) return std::nullopt;
    return decode<Outcome>(*value, version, key);
}

void Session::failInit(Errc code, const std::string &reason) {
    (void)store_->compareSet(keys::initFailed(), std::nullopt,
                             encode(Outcome{0, false, self_, code, reason}));
}

void Session::finish(uint64_t version, bool collect) {
    if (version <= retain_) return;
    const std::string old = keys::versionPrefix(version - retain_);
    for (auto it = seen_.lower_bound(old); it != seen_.end() && startsWith(it->first, old);) {
        it = seen_.erase(it);
    }
    if (collect) (void)store_->erasePrefix(old);
}

std::vector<std::string> Session::forTrainers(std::string (*key)(uint64_t, int),
                                              uint64_t version) const {
    std::vector<std::string> out;
    for (int t = 0; t < roster_.trainers; ++t) out.push_back(key(version, t));
    return out;
}

std::vector<std::string> Session::forPeers(std::string (*key)(uint64_t, const std::string &),
                                           uint64_t version) const {
    std::vector<std::string> out;
    for (const std::string &p : roster_.peers) out.push_back(key(version, p));
    return out;
}

}  // namespace weightsync::engine::protocol
