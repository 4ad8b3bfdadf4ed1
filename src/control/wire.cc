#include "control/wire.h"

#include "common/base64.h"

#include <array>

namespace weightsync::control::wire {
namespace {

constexpr std::array<Errc, 11> kAllCodes = {
    Errc::kInvalidArgument, Errc::kNotFound, Errc::kMismatch,
    Errc::kUnsupported,     Errc::kTimeout,  Errc::kPeerLost,
    Errc::kTransport,       Errc::kProtocol, Errc::kIo,
    Errc::kCorruption,      Errc::kInternal,
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
    check(array.is_array(), Errc::kProtocol, "expected an array of entries");
    std::vector<KeyValue> entries;
    entries.reserve(array.size());
    for (const auto &item : array) {
        entries.push_back({item.at("key").get<std::string>(),
                           base64Decode(item.at("value").get<std::string>()),
                           item.at("revision").get<uint64_t>()});
    }
    return entries;
}

std::string dump(const nlohmann::json &message) {
    try {
        return message.dump();
    } catch (const nlohmann::json::type_error &e) {
        fail(Errc::kInvalidArgument, "store keys must be valid UTF-8 ({})", e.what());
    }
}

nlohmann::json parse(const std::string &text) {
    auto message = nlohmann::json::parse(text, nullptr, false);
    check(message.is_object(), Errc::kProtocol, "malformed store message ({} bytes)", text.size());
    return message;
}

}  // namespace weightsync::control::wire
