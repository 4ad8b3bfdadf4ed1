#include "engine/protocol/messages.h"

#include "control/wire.h"
#include "engine/metrics.h"

#include <nlohmann/json.hpp>

namespace weightsync::engine::protocol {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Request, version)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Paused, version, held)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Done, version, bytes, writes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Landed, version)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Prepared, version, wait_seconds, hook_seconds)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Resumed, version, wait_seconds, hook_seconds)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Aborted, version, held, intact, serving,
                                   mismatched_bytes_vs_held, error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Verified, version, verified, checked_bytes, mismatched_bytes,
                                   verify_seconds)

void to_json(nlohmann::json &j, const Outcome &o) {
    j = {{"version", o.version},
         {"commit", o.commit},
         {"by", o.by},
         {"code", std::string(control::wire::codeName(o.code))},
         {"reason", o.reason}};
}

void from_json(const nlohmann::json &j, Outcome &o) {
    j.at("version").get_to(o.version);
    j.at("commit").get_to(o.commit);
    j.at("by").get_to(o.by);
    o.code = control::wire::parseCode(j.at("code").get<std::string>());
    j.at("reason").get_to(o.reason);
}

namespace {

template <typename Message>
uint64_t versionOf(const Message &m) {
    return m.version;
}
uint64_t versionOf(const PushMetrics &m) {
    return m.version;
}

template <typename Message>
nlohmann::json toJsonValue(const Message &m) {
    return m;
}
nlohmann::json toJsonValue(const PushMetrics &m) {
    return m.toJson();
}

template <typename Message>
Message fromJsonValue(const nlohmann::json &j) {
    return j.get<Message>();
}
template <>
PushMetrics fromJsonValue<PushMetrics>(const nlohmann::json &j) {
    return PushMetrics::fromJson(j);
}

}  // namespace

template <typename Message>
std::string encode(const Message &message) {
    return toJsonValue(message).dump();
}

template <typename Message>
Message decode(const std::string &text, uint64_t version, const std::string &key) {
    Message m;
    try {
        m = fromJsonValue<Message>(nlohmann::json::parse(text));
    } catch (const nlohmann::json::exception &e) {
        fail(Errc::kProtocol, "malformed message at '{}': {}", key, e.what());
    }
    check(versionOf(m) == version, Errc::kProtocol,
          "message at '{}' belongs to version {}, expected version {}", key, versionOf(m), version);
    return m;
}

#define WEIGHTSYNC_PROTOCOL_MESSAGE(Message)               \
    template std::string encode<Message>(const Message &); \
    template Message decode<Message>(const std::string &, uint64_t, const std::string &);

WEIGHTSYNC_PROTOCOL_MESSAGE(Request)
WEIGHTSYNC_PROTOCOL_MESSAGE(Paused)
WEIGHTSYNC_PROTOCOL_MESSAGE(Done)
WEIGHTSYNC_PROTOCOL_MESSAGE(Landed)
WEIGHTSYNC_PROTOCOL_MESSAGE(Prepared)
WEIGHTSYNC_PROTOCOL_MESSAGE(Outcome)
WEIGHTSYNC_PROTOCOL_MESSAGE(Resumed)
WEIGHTSYNC_PROTOCOL_MESSAGE(Aborted)
WEIGHTSYNC_PROTOCOL_MESSAGE(Verified)
WEIGHTSYNC_PROTOCOL_MESSAGE(PushMetrics)

#undef WEIGHTSYNC_PROTOCOL_MESSAGE

}  // namespace weightsync::engine::protocol
