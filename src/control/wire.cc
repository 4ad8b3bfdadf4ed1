#include "control/wire.h"

#include "common/base64.h"
#include "common/json.h"

#include <array>

namespace weightsync::control::wire {
namespace {

constexpr std::array<Errc, 12> kAllCodes = {
    Errc::kInvalidArgument, Errc::kNotFound,        Errc::kMismatch,
    Errc::kUnsupported,     Errc::kTimeout,         Errc::kPeerLost,
    Errc::kTransport,       Errc::kProtocol,        Errc::kIo,
    Errc::kCorruption,      Errc::kUnauthenticated, Errc::kInternal,
};

}  // namespace

std::string base64Encode(std::string_view bytes) {
    return encodeBase64(bytes);
}

std::string base64Decode(std::string_view text) {
    try {
        return decodeBase64(text);
    } catch (const Error &e) {
        throw Error(Errc::kProtocol, std::string("malformed message value: ") + e.what());
    }
}

std::string_view codeName(Errc code) {
    return errcName(code);
}

Errc parseCode(std::string_view name) {
    for (Errc code : kAllCodes) {
        if (errcName(code) == name) return code;
    }
    return Errc::kInternal;
}

std::string bareMessage(const Error &error) {
    const std::string_view what = error.what();
    const std::string prefix = std::string(errcName(error.code())) + ": ";
    if (what.substr(0, prefix.size()) == prefix) return std::string(what.substr(prefix.size()));
    return std::string(what);
}

nlohmann::json entriesToJson(const std::vector<KeyValue> &entries) {
    auto array = nlohmann::json::array();
    for (const auto &entry : entries) {
        array.push_back({{"key", entry.key},
                         {"value", base64Encode(entry.value)},
                         {"revision", entry.revision}});
    }
    return array;
}

std::vector<KeyValue> entriesFromJson(const nlohmann::json &array) {
    check(array.is_array(), Errc::kProtocol, "expected an array of entries, got {}",
          array.type_name());
    std::vector<KeyValue> entries;
    entries.reserve(array.size());
    for (const auto &item : array) {
        check(item.is_object(), Errc::kProtocol, "an entry is a JSON {}, not an object",
              item.type_name());
        entries.push_back({field<std::string>(item, "key"),
                           base64Decode(field<std::string>(item, "value")),
                           field<uint64_t>(item, "revision")});
    }
    return entries;
}

ReplyStatus replyStatus(const nlohmann::json &reply, uint64_t id) {
    ReplyStatus status;
    const auto text = [&](const char *name) {
        const auto it = reply.find(name);
        return it != reply.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const auto id_it = reply.find("id");
    const bool null_id = id_it == reply.end() || id_it->is_null();
    const auto ok_it = reply.find("ok");
    status.ok = ok_it != reply.end() && ok_it->is_boolean() && ok_it->get<bool>();
    if (!status.ok) {
        status.code = parseCode(text("code"));
        status.message = text("error");
        if (status.message.empty()) status.message = "(no message)";
    }
    if (null_id && !status.ok) {
        status.connection_lost = true;
        status.message = "it closed this connection: " + status.message;
    } else if (id_it == reply.end() || !id_it->is_number_unsigned() ||
               id_it->get<uint64_t>() != id) {
        status.connection_lost = true;
        std::string got = null_id ? std::string("null") : id_it->dump();
        if (got.size() > 40) got = got.substr(0, 40) + "...";
        status.message = fmt::format("reply id {} does not match request id {}", got, id);
    } else if (!status.ok && status.code == Errc::kPeerLost) {
        status.connection_lost = true;
        status.message = "it is shutting down: " + status.message;
    }
    return status;
}

std::string dump(const nlohmann::json &message) {
    try {
        return message.dump();
    } catch (const nlohmann::json::type_error &e) {
        fail(Errc::kInvalidArgument, "store keys must be valid UTF-8 ({})", e.what());
    }
}

nlohmann::json parse(std::string_view text) {
    auto message = parseJson(text, "store message");
    check(message.is_object(), Errc::kProtocol, "store message is a JSON {}, not an object",
          message.type_name());
    return message;
}

}  // namespace weightsync::control::wire
