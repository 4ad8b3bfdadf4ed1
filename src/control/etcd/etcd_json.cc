#include "control/etcd/etcd_json.h"

#include "common/base64.h"
#include "common/error.h"
#include "common/json.h"

#include <charconv>

namespace weightsync::control::etcd {

std::string prefixEnd(const std::string &prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto &last = reinterpret_cast<unsigned char &>(end.back());
        if (last < 0xff) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');
}

int64_t intField(const nlohmann::json &object, const char *name) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return 0;
    if (it->is_string()) {
        const std::string &text = it->get_ref<const std::string &>();
        int64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        check(ec == std::errc() && end == text.data() + text.size(), Errc::kProtocol,
              "etcd reply: field '{}' is not an integer: '{}'", name, text);
        return value;
    }
    return jsonInteger<int64_t>(*it, std::string("etcd reply field ") + name);
}

std::string bytesField(const nlohmann::json &object, const char *name) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return {};
    check(it->is_string(), Errc::kProtocol, "etcd reply: field '{}' is not a string", name);
    try {
        return decodeBase64(it->get_ref<const std::string &>());
    } catch (const Error &e) {
        fail(Errc::kProtocol, "etcd reply: field '{}': {}", name, e.what());
    }
}

KeyValue keyValue(const nlohmann::json &kv, size_t strip) {
    check(kv.is_object(), Errc::kProtocol, "etcd reply: a key-value is not an object");
    std::string key = bytesField(kv, "key");
    check(key.size() >= strip, Errc::kProtocol, "etcd reply: key outside the store's namespace");
    key.erase(0, strip);
    return KeyValue{std::move(key), bytesField(kv, "value"),
                    static_cast<uint64_t>(intField(kv, "mod_revision"))};
}

uint64_t headerRevision(const nlohmann::json &reply) {
    const auto it = reply.find("header");
    check(it != reply.end() && it->is_object(), Errc::kProtocol, "etcd reply without a header");
    return static_cast<uint64_t>(intField(*it, "revision"));
}

nlohmann::json parseReply(long status, const std::string &body,  // NOLINT(google-runtime-int)
                          const std::string &what) {
    nlohmann::json reply;
    try {
        reply = parseJson(body, "etcd reply to " + what);
    } catch (const Error &e) {
        fail(Errc::kProtocol, "etcd answered {} with HTTP {} and no JSON: {}", what, status,
             body.substr(0, 200));
    }
    check(reply.is_object(), Errc::kProtocol, "etcd reply to {} is not an object", what);
    const auto error = reply.find("error");
    if (status != 200 || error != reply.end()) {
        const auto code = intField(reply, "code");
        const std::string message = reply.value("message", reply.value("error", body));
        // grpc status codes: 3 InvalidArgument, 14 Unavailable, 4 DeadlineExceeded.
        const Errc errc = code == 3    ? Errc::kInvalidArgument
                          : code == 14 ? Errc::kPeerLost
                          : code == 4  ? Errc::kTimeout
                                       : Errc::kProtocol;
        fail(errc, "etcd refused {} (HTTP {}): {}", what, status, message);
    }
    return reply;
}

}  // namespace weightsync::control::etcd
