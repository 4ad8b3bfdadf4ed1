#pragma once
// One participant's view of a job's control plane: typed messages in, typed messages out, and
// the one wait primitive every step of the protocol uses. It also holds the participant's last
// will (its lost/<who> key is written by the store when the process dies or stops answering) and
// erases the keys of finished versions.

#include "control/store.h"
#include "engine/protocol/keys.h"
#include "engine/protocol/messages.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weightsync::engine::protocol {

using Clock = std::chrono::steady_clock;

/// Who takes part in a job: every trainer rank and every inference rank.
struct Roster {
    int trainers = 0;
    std::vector<std::string> peers;  // inference ranks ("e0r1"), in fleet order

    [[nodiscard]] std::vector<std::string> participants() const;
};

/// What ends a wait early, besides its keys arriving and its deadline.
struct AbortOn {
    uint64_t version = 0;           // that version's outcome is an abort (0: none)
    bool init = false;              // init/failed exists
    bool lost = true;               // a participant is lost that this wait needs, or that did not
                                    // leave cleanly (with `version`: the version is aborted too)
    bool lost_needed_only = false;  // (inference ranks may rejoin) only a lost participant this
                                    // wait needs counts
    Clock::time_point lost_grace_until{};  // a needed lost participant counts only after this
                                           // (it may rejoin meanwhile)
    bool newer_request = false;  // a version above `version` was requested (Errc::kProtocol)
    const std::atomic<bool> *cancelled = nullptr;  // set: give up (Errc::kTimeout) within ~1 s
};

class Session {
  public:
    /// self: this participant's name (trainerName / inferenceName / kLauncher). retain: how many
    /// finished versions' keys stay in the store for diagnosis.
    Session(std::shared_ptr<control::Store> store, std::string self, Roster roster,
            uint64_t retain = 4);
    ~Session();
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    [[nodiscard]] const std::string &self() const { return self_; }
    [[nodiscard]] const Roster &roster() const { return roster_; }
    [[nodiscard]] control::Store &store() { return *store_; }

    /// Registers this participant's last will (lost/<self>), kept alive every ttl/4, and
    /// announces that it (re)joined. Waits then fail with Errc::kPeerLost within about ttl of any
    /// participant dying or stopping.
    void holdLiveness(std::chrono::milliseconds ttl);
    /// Whether `who` is lost now: its lost key is newer than its last (re)join.
    [[nodiscard]] bool isLost(const std::string &who) const;
    /// The value of `key` as of the last wait (no round trip), if it existed then.
    [[nodiscard]] std::optional<std::string> cached(const std::string &key) const;
    /// Announces that this participant finished its part of the job: its end is not a loss.
    void leave();

    /// Blocks until every key in `keys` exists and returns their values in order. Ends early
    /// per `abort` (kPeerLost naming the lost participant, or the aborted version's own error
    /// code and cause; kProtocol for a newer request) and at the deadline (kTimeout naming what
    /// is still missing). Never spins: each round blocks on the store's revision.
    std::vector<std::string> await(const std::vector<std::string> &keys, Clock::time_point deadline,
                                   const AbortOn &abort, const std::string &what);

    /// As await(), but returns once any key of `keys` exists: the index of the first one that
    /// does (cached() then has its value and those of any others that arrived).
    size_t awaitAny(const std::vector<std::string> &keys, Clock::time_point deadline,
                    const AbortOn &abort, const std::string &what);

    template <typename Message>
    void publish(const std::string &key, const Message &message) {
        store_->set(key, encode(message));
    }
    template <typename Message>
    [[nodiscard]] std::vector<Message> awaitAll(const std::vector<std::string> &keys,
                                                uint64_t version, Clock::time_point deadline,
                                                const AbortOn &abort, const std::string &what) {
        std::vector<Message> out;
        const std::vector<std::string> values = await(keys, deadline, abort, what);
        for (size_t i = 0; i < keys.size(); ++i) {
            out.push_back(decode<Message>(values[i], version, keys[i]));
        }
        return out;
    }

    /// The version's one decision: proposes `outcome`; the first proposal anybody made wins and
    /// is returned.
    Outcome decide(const Outcome &outcome);
    /// The decision of `version` if one was made.
    std::optional<Outcome> outcome(uint64_t version);

    /// Fails the job's start-up for everybody (init/failed; the first failure wins).
    void failInit(Errc code, const std::string &reason);

    /// Version `version` is over for this participant: forgets the keys of the version `retain`
    /// versions before it and, with `collect` (one participant does it), erases them from the
    /// store, so neither the store nor any participant grows with the number of versions.
    void finish(uint64_t version, bool collect);

    /// The keys of one kind for every participant of that kind.
    [[nodiscard]] std::vector<std::string> forTrainers(std::string (*key)(uint64_t, int),
                                                       uint64_t version) const;
    [[nodiscard]] std::vector<std::string> forPeers(std::string (*key)(uint64_t,
                                                                       const std::string &),
                                                    uint64_t version) const;

  private:
    void refresh(Clock::time_point until);
    /// await() (any = false) and awaitAny(): the index of the first present key (0 for await).
    size_t wait(const std::vector<std::string> &keys, Clock::time_point deadline,
                const AbortOn &abort, const std::string &what, bool any);
    void throwIfAborted(const AbortOn &abort, const std::vector<std::string> &needed,
                        const std::string &what);

    std::shared_ptr<control::Store> store_;
    std::string self_;
    Roster roster_;
    uint64_t retain_;
    std::unique_ptr<control::LastWill> will_;
    struct Seen {
        std::string value;
        uint64_t revision = 0;  // of its last write (0: written by this session, not yet seen)
    };
    std::map<std::string, Seen> seen_;  // every key of the job seen so far
    uint64_t revision_ = 0;             // the store revision seen_ is current to
    bool listed_ = false;
};

}  // namespace weightsync::engine::protocol
