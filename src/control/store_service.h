#pragma once
// The coordinator's request handling, apart from sockets: one request frame in, one reply frame
// out, against a MemoryStore. A wait or watch that cannot be answered yet becomes a PendingCall
// that the server (TcpStoreServer) parks and retries after store writes and at its deadline, so
// no thread blocks on a client's behalf. Wire format: docs/control-store.md.

#include "control/auth.h"
#include "control/clock.h"
#include "control/memory_store.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace weightsync::control {

/// A wait (key) or watch (prefix, after_revision) parked until it can be answered.
struct PendingCall {
    nlohmann::json id;
    bool watch = false;
    std::string key;  // the key of a wait, the prefix of a watch
    uint64_t after_revision = 0;
    std::chrono::milliseconds asked{0};    // the timeout the client asked for
    std::chrono::milliseconds timeout{0};  // after clamping to the server's maximum
    Clock::time_point deadline;
};

/// A client's last will, bound to its connection (see control::LastWill): the server sets `key`
/// to `value` when the connection ends, or stays silent for `ttl`, with the will still bound.
struct ConnectionWill {
    std::string key;
    std::string value;
    std::chrono::milliseconds ttl{0};
};

/// Answers one request frame. Returns the reply payload, or nullopt after filling `pending`
/// when the request is a wait/watch that is not ready yet. Never throws for bad input: a
/// malformed request gets an error reply. wait/watch timeouts are clamped to max_call_timeout.
/// `will` is the connection's: the will ops bind, keep alive and withdraw it.
/// auth (null or without a secret: none): every request but hello must carry its MAC and a
/// counter above the last one (docs/security.md), else it is refused with kUnauthenticated and
/// logged naming `peer`.
std::optional<std::string> handleRequest(MemoryStore &store, std::string_view frame,
                                         std::chrono::milliseconds max_call_timeout,
                                         PendingCall &pending, std::optional<ConnectionWill> &will,
                                         RequestAuth *auth = nullptr, std::string_view peer = {});

/// The reply to a parked call once it is ready, or its timeout error once now >= deadline;
/// nullopt while neither.
std::optional<std::string> resumePending(MemoryStore &store, const PendingCall &pending,
                                         Clock::time_point now);

/// An error reply not tied to a request (id null): the server refuses a connection or drops one
/// that sent an unusable frame.
std::string connectionErrorReply(Errc code, std::string_view message);

}  // namespace weightsync::control
