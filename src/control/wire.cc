#include "control/wire.h"

#include <array>

namespace weightsync::control::wire {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<Errc, 11> kAllCodes = {
    Errc::kInvalidArgument, Errc::kNotFound, Errc::kMismatch,
    Errc::kUnsupported,     Errc::kTimeout,  Errc::kPeerLost,
    Errc::kTransport,       Errc::kProtocol, Errc::kIo,
    Errc::kCorruption,      Errc::kInternal,
};

int decodeChar(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                           (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                           static_cast<uint8_t>(bytes[i + 2]);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    const size_t rest = bytes.size() - i;
    if (rest > 0) {
        uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
        if (rest == 2) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string base64Decode(std::string_view text) {
    check(text.size() % 4 == 0, Errc::kProtocol, "base64 length {} is not a multiple of 4",
          text.size());
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; ++j) {
            const int d = j >= 4 - static_cast<size_t>(pad) ? 0 : decodeChar(text[i + j]);
            check(d >= 0, Errc::kProtocol, "invalid base64 character at offset {}", i + j);
            v = (v << 6) | static_cast<uint32_t>(d);
        }
        out += static_cast<char>((v >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(v & 0xff);
    }
    return out;
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
