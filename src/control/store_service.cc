#include "control/store_service.h"

#include "common/json.h"
#include "common/log.h"
#include "control/frame.h"
#include "control/wire.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace weightsync::control {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::string str(const json &request, const char *name) {
    return wire::field<std::string>(request, name);
}

std::string bytes(const json &request, const char *name) {
    return wire::base64Decode(wire::field<std::string>(request, name));
}

/// timeout_ms as the client asked (negative = 0, saturating at int64).
milliseconds askedTimeout(const json &request) {
    const json &t = request.at("timeout_ms");
    check(t.is_number(), Errc::kProtocol, "timeout_ms must be a number, got {}", t.type_name());
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    if (t.is_number_unsigned()) {
        return milliseconds(static_cast<int64_t>(std::min<uint64_t>(t.get<uint64_t>(), kMax)));
    }
    if (t.is_number_integer()) return milliseconds(std::max<int64_t>(t.get<int64_t>(), 0));
    const double value = t.get<double>();
    if (!(value > 0)) return milliseconds(0);  // also NaN
    if (value >= 9.2e18) return milliseconds(kMax);
    return milliseconds(static_cast<int64_t>(value));
}

/// Serialises a reply; a value that cannot be encoded (a key that is not UTF-8, written
/// in-process) becomes an error reply instead of an exception.
std::string dumpReply(const json &reply) {
    try {
        std::string text = reply.dump();
        if (text.size() <= kMaxFrameBytes) return text;
        json error = {{"id", reply.value("id", json())},
                      {"ok", false},
                      {"code", wire::codeName(Errc::kInvalidArgument)},
                      {"error", fmt::format("the reply of {} bytes exceeds the {} byte frame limit",
                                            text.size(), kMaxFrameBytes)}};
        return error.dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const json::exception &e) {
        json error = {{"id", reply.value("id", json())},
                      {"ok", false},
                      {"code", wire::codeName(Errc::kInvalidArgument)},
                      {"error", fmt::format("the reply cannot be encoded as JSON: {}", e.what())}};
        return error.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

std::string errorReply(const json &id, Errc code, std::string_view message) {
    const json reply = {
        {"id", id}, {"ok", false}, {"code", wire::codeName(code)}, {"error", message}};
    return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string timeoutMessage(const PendingCall &p) {
    std::string message =
        p.watch ? fmt::format("watch on prefix '{}' after revision {} timed out after {} ms", p.key,
                              p.after_revision, p.timeout.count())
                : fmt::format("wait for key '{}' timed out after {} ms", p.key, p.timeout.count());
    if (p.asked > p.timeout) {
        message += fmt::format(" (asked {} ms; the coordinator allows at most {} ms)",
                               p.asked.count(), p.timeout.count());
    }
    return message;
}

/// Checks a request's MAC (over the connection's nonce and the request without "mac") and that
/// its counter is above the last accepted one; throws kUnauthenticated.
void authenticate(const json &request, RequestAuth &auth) {
    const auto mac = request.find("mac");
    const auto seq = request.find("seq");
    check(mac != request.end() && mac->is_string() && seq != request.end() &&
              seq->is_number_unsigned(),
          Errc::kUnauthenticated,
          "this coordinator serves an authenticated job: the request carries no MAC of the job "
          "secret (--job-secret-file / WEIGHTSYNC_JOB_SECRET)");
    json unsigned_request = request;
    unsigned_request.erase("mac");
    check(auth.secret->verify(requestMacInput(auth.nonce, wire::dump(unsigned_request)),
                              fromHex(mac->get<std::string>())),
          Errc::kUnauthenticated, "the request's MAC does not match the job secret");
    const auto n = seq->get<uint64_t>();
    check(n > auth.last_seq, Errc::kUnauthenticated,
          "replayed request: counter {} after {} was accepted", n, auth.last_seq);
    auth.last_seq = n;
}

/// Handles every op that answers at once; fills pending for wait/watch and returns nullopt.
std::optional<json> dispatch(MemoryStore &store, const json &request, milliseconds max_timeout,
                             PendingCall &pending, std::optional<ConnectionWill> &will) {
    json reply = json::object();
    reply["id"] = request.value("id", json());
    const std::string op = str(request, "op");
    if (op == "hello") {
        reply["version"] = wire::kProtocolVersion;
        reply["revision"] = store.revision();
    } else if (op == "set") {
        store.set(str(request, "key"), bytes(request, "value"));
    } else if (op == "get") {
        auto value = store.get(str(request, "key"));
        reply["found"] = value.has_value();
        if (value) reply["value"] = wire::base64Encode(*value);
    } else if (op == "wait" || op == "watch") {
        pending.id = reply["id"];
        pending.watch = op == "watch";
        pending.key = str(request, pending.watch ? "prefix" : "key");
        pending.after_revision =
            pending.watch ? wire::field<uint64_t>(request, "after_revision") : uint64_t{0};
        pending.asked = askedTimeout(request);
        pending.timeout = std::min(pending.asked, std::max(max_timeout, milliseconds(0)));
        pending.deadline = deadlineAfter(pending.timeout);
        return std::nullopt;
    } else if (op == "compare_set") {
        std::optional<std::string> expected;
        if (!request.at("expected").is_null()) expected = bytes(request, "expected");
        reply["swapped"] =
            store.compareSet(str(request, "key"), expected, bytes(request, "desired"));
    } else if (op == "add") {
        reply["value"] = store.add(str(request, "key"), wire::field<int64_t>(request, "delta"));
    } else if (op == "list") {
        reply["entries"] = wire::entriesToJson(store.list(str(request, "prefix")));
    } else if (op == "erase") {
        store.erase(str(request, "key"));
    } else if (op == "erase_prefix") {
        reply["erased"] = store.erasePrefix(str(request, "prefix"));
    } else if (op == "will") {
        const auto ttl = milliseconds(wire::field<int64_t>(request, "ttl_ms"));
        check(ttl.count() > 0 && ttl <= std::max(max_timeout, milliseconds(1)),
              Errc::kInvalidArgument, "a will needs a ttl_ms in [1, {}], got {}",
              max_timeout.count(), ttl.count());
        will = ConnectionWill{str(request, "key"), bytes(request, "value"), ttl};
    } else if (op == "keep_alive") {
        check(will.has_value(), Errc::kProtocol, "keep_alive on a connection without a will");
    } else if (op == "release_will") {
        will.reset();
    } else {
        fail(Errc::kProtocol, "unknown store op '{}'", op);
    }
    reply["ok"] = true;
    return reply;
}

}  // namespace

std::optional<std::string> handleRequest(MemoryStore &store, std::string_view frame,
                                         milliseconds max_call_timeout, PendingCall &pending,
                                         std::optional<ConnectionWill> &will, RequestAuth *auth,
                                         std::string_view peer) {
    json id;
    try {
        const json request = parseJson(frame, "store request");
        check(request.is_object(), Errc::kProtocol, "store request is a JSON {}, not an object",
              request.type_name());
        id = request.value("id", json());
        const bool secured = auth != nullptr && auth->secret != nullptr;
        if (secured && request.value("op", json()) != "hello") {
            try {
                authenticate(request, *auth);
            } catch (const Error &e) {
                logger("coordinator")
                    ->warn("refused a request from {}: {}", peer, wire::bareMessage(e));
                throw;
            }
        }
        std::optional<json> reply = dispatch(store, request, max_call_timeout, pending, will);
        if (reply && secured && request.value("op", json()) == "hello") {
            (*reply)["nonce"] = auth->nonce;
        }
        if (reply) return dumpReply(*reply);
        return resumePending(store, pending, Clock::now());
    } catch (const Error &e) {
        return errorReply(id, e.code(), wire::bareMessage(e));
    } catch (const json::exception &e) {
        return errorReply(id, Errc::kProtocol,
                          fmt::format("malformed store request: {}", e.what()));
    }
}

std::optional<std::string> resumePending(MemoryStore &store, const PendingCall &pending,
                                         Clock::time_point now) {
    json reply = {{"id", pending.id}, {"ok", true}};
    if (pending.watch) {
        std::vector<KeyValue> entries = store.changedSince(pending.key, pending.after_revision);
        if (!entries.empty()) {
            reply["entries"] = wire::entriesToJson(entries);
            return dumpReply(reply);
        }
    } else if (std::optional<std::string> value = store.get(pending.key)) {
        reply["value"] = wire::base64Encode(*value);
        return dumpReply(reply);
    }
    if (now < pending.deadline) return std::nullopt;
    return errorReply(pending.id, Errc::kTimeout, timeoutMessage(pending));
}

std::string connectionErrorReply(Errc code, std::string_view message) {
    return errorReply(json(), code, message);
}

}  // namespace weightsync::control
