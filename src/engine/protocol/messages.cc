#include "engine/protocol/messages.h"

#include "checkpoint/manifest.h"
#include "common/base64.h"
#include "common/json.h"
#include "control/wire.h"
#include "engine/metrics.h"

#include <nlohmann/json.hpp>

namespace weightsync::engine::protocol {

using nlohmann::json;

namespace {

// Fields read from another process: integers must be JSON integers that fit (a float such as
// 1e300 is refused, never converted), numbers must be numbers.
template <typename T>
T integer(const json &j, const char *name) {
    return jsonInteger<T>(j.at(name), name);
}
double number(const json &j, const char *name) {
    const json &v = j.at(name);
    check(v.is_number(), Errc::kProtocol, "{}: expected a number, got {}", name, v.type_name());
    return v.get<double>();
}

}  // namespace

void to_json(json &j, const Request &m) {
    j = {{"version", m.version}};
}
void from_json(const json &j, Request &m) {
    m.version = integer<uint64_t>(j, "version");
}
void to_json(json &j, const Paused &m) {
    j = {{"version", m.version}, {"held", m.held}, {"target", m.target}};
}
void from_json(const json &j, Paused &m) {
    m.version = integer<uint64_t>(j, "version");
    m.held = integer<uint64_t>(j, "held");
    m.target = integer<uint32_t>(j, "target");
}
void to_json(json &j, const CheckpointRanges &m) {
    json list = json::array();
    for (const checkpoint::HashedRange &r : m.ranges) {
        list.push_back({r.file, r.offset, r.bytes, checkpoint::hashHex(r.xxh3)});
    }
    j = {{"version", m.version}, {"ranges", list}};
}
void from_json(const json &j, CheckpointRanges &m) {
    m.version = integer<uint64_t>(j, "version");
    const json &list = j.at("ranges");
    check(list.is_array(), Errc::kProtocol, "ranges: expected an array, got {}", list.type_name());
    m.ranges.clear();
    for (const json &r : list) {
        check(r.is_array() && r.size() == 4 && r[3].is_string(), Errc::kProtocol,
              "ranges: expected [file, offset, bytes, hex hash], got {}", r.dump());
        m.ranges.push_back({jsonInteger<uint32_t>(r[0], "file"),
                            jsonInteger<int64_t>(r[1], "offset"),
                            jsonInteger<int64_t>(r[2], "bytes"),
                            checkpoint::parseHashHex(r[3].get<std::string>(), "ranges")});
    }
}
void to_json(json &j, const Done &m) {
    j = {{"version", m.version}, {"bytes", m.bytes}, {"writes", m.writes}};
    if (!m.checksums.empty()) {
        std::string raw(m.checksums.size() * sizeof(uint64_t), '\0');
        for (size_t i = 0; i < m.checksums.size(); ++i) {
            for (size_t b = 0; b < sizeof(uint64_t); ++b) {
                raw[i * 8 + b] = static_cast<char>((m.checksums[i] >> (8 * b)) & 0xff);
            }
        }
        j["checksums"] = encodeBase64(raw);
    }
}
void from_json(const json &j, Done &m) {
    m.version = integer<uint64_t>(j, "version");
    m.bytes = integer<int64_t>(j, "bytes");
    m.writes = integer<int64_t>(j, "writes");
    m.checksums.clear();
    if (j.contains("checksums")) {
        const json &c = j.at("checksums");
        check(c.is_string(), Errc::kProtocol, "checksums: expected a base64 string, got {}",
              c.type_name());
        const std::string raw = decodeBase64(c.get<std::string>());
        check(raw.size() % 8 == 0, Errc::kProtocol,
              "checksums: {} bytes is not a whole number of 64-bit checksums", raw.size());
        m.checksums.resize(raw.size() / 8);
        for (size_t i = 0; i < m.checksums.size(); ++i) {
            uint64_t v = 0;
            for (size_t b = 0; b < sizeof(uint64_t); ++b) {
                v |= static_cast<uint64_t>(static_cast<unsigned char>(raw[i * 8 + b])) << (8 * b);
            }
            m.checksums[i] = v;
        }
    }
}
void to_json(json &j, const WritesLanded &m) {
    j = {{"version", m.version}, {"writes", m.writes}};
}
void from_json(const json &j, WritesLanded &m) {
    m.version = integer<uint64_t>(j, "version");
    m.writes = integer<int64_t>(j, "writes");
    check(m.writes >= 0, Errc::kProtocol, "writes: {} is negative", m.writes);
}
void to_json(json &j, const Landed &m) {
    j = {{"version", m.version}};
}
void from_json(const json &j, Landed &m) {
    m.version = integer<uint64_t>(j, "version");
}
void to_json(json &j, const Prepared &m) {
    j = {
        {"version", m.version}, {"wait_seconds", m.wait_seconds}, {"hook_seconds", m.hook_seconds}};
}
void from_json(const json &j, Prepared &m) {
    m.version = integer<uint64_t>(j, "version");
    m.wait_seconds = number(j, "wait_seconds");
    m.hook_seconds = number(j, "hook_seconds");
}
void to_json(json &j, const Resumed &m) {
    j = {{"version", m.version},
         {"wait_seconds", m.wait_seconds},
         {"hook_seconds", m.hook_seconds},
         {"paused_seconds", m.paused_seconds},
         {"probe_gap_seconds", m.probe_gap_seconds},
         {"swapped", m.swapped}};
}
void from_json(const json &j, Resumed &m) {
    m.version = integer<uint64_t>(j, "version");
    m.wait_seconds = number(j, "wait_seconds");
    m.hook_seconds = number(j, "hook_seconds");
    m.paused_seconds = number(j, "paused_seconds");
    m.probe_gap_seconds = number(j, "probe_gap_seconds");
    j.at("swapped").get_to(m.swapped);
}
void to_json(json &j, const Aborted &m) {
    j = {{"version", m.version},
         {"held", m.held},
         {"intact", m.intact},
         {"serving", m.serving},
         {"mismatched_bytes_vs_held", m.mismatched_bytes_vs_held},
         {"error", m.error}};
}
void from_json(const json &j, Aborted &m) {
    m.version = integer<uint64_t>(j, "version");
    m.held = integer<uint64_t>(j, "held");
    j.at("intact").get_to(m.intact);
    j.at("serving").get_to(m.serving);
    m.mismatched_bytes_vs_held = integer<int64_t>(j, "mismatched_bytes_vs_held");
    j.at("error").get_to(m.error);
}
void to_json(json &j, const Verified &m) {
    j = {{"version", m.version},
         {"verified", m.verified},
         {"checked_bytes", m.checked_bytes},
         {"mismatched_bytes", m.mismatched_bytes},
         {"verify_seconds", m.verify_seconds}};
}
void from_json(const json &j, Verified &m) {
    m.version = integer<uint64_t>(j, "version");
    j.at("verified").get_to(m.verified);
    m.checked_bytes = integer<int64_t>(j, "checked_bytes");
    m.mismatched_bytes = integer<int64_t>(j, "mismatched_bytes");
    m.verify_seconds = number(j, "verify_seconds");
}

void to_json(nlohmann::json &j, const Outcome &o) {
    j = {{"version", o.version},
         {"commit", o.commit},
         {"by", o.by},
         {"code", std::string(control::wire::codeName(o.code))},
         {"reason", o.reason}};
}

void from_json(const nlohmann::json &j, Outcome &o) {
    o.version = integer<uint64_t>(j, "version");
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
        const json j = parseJson(text, key);
        check(j.is_object(), Errc::kProtocol, "is a JSON {}, not an object", j.type_name());
        m = fromJsonValue<Message>(j);
    } catch (const nlohmann::json::exception &e) {
        fail(Errc::kProtocol, "malformed message at '{}': {}", key, e.what());
    } catch (const Error &e) {
        fail(Errc::kProtocol, "malformed message at '{}': {}", key, control::wire::bareMessage(e));
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
WEIGHTSYNC_PROTOCOL_MESSAGE(WritesLanded)
WEIGHTSYNC_PROTOCOL_MESSAGE(Landed)
WEIGHTSYNC_PROTOCOL_MESSAGE(Prepared)
WEIGHTSYNC_PROTOCOL_MESSAGE(Outcome)
WEIGHTSYNC_PROTOCOL_MESSAGE(Resumed)
WEIGHTSYNC_PROTOCOL_MESSAGE(Aborted)
WEIGHTSYNC_PROTOCOL_MESSAGE(Verified)
WEIGHTSYNC_PROTOCOL_MESSAGE(CheckpointRanges)
WEIGHTSYNC_PROTOCOL_MESSAGE(PushMetrics)

#undef WEIGHTSYNC_PROTOCOL_MESSAGE

}  // namespace weightsync::engine::protocol
