#include "common/base64.h"

#include "common/error.h"

#include <array>
#include <cstdint>

namespace weightsync {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> makeDecodeTable() {
    std::array<int8_t, 256> table{};
    table.fill(-1);
    for (size_t i = 0; i < kAlphabet.size(); ++i) {
        table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
    }
    return table;
}

constexpr std::array<int8_t, 256> kDecode = makeDecodeTable();

}  // namespace

std::string encodeBase64(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
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

std::string decodeBase64(std::string_view text) {
    check(text.size() % 4 == 0, Errc::kInvalidArgument,
          "base64 text has length {}, not a multiple of 4", text.size());
    size_t padding = 0;
    if (!text.empty() && text.back() == '=') ++padding;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        uint32_t v = 0;
        const bool last = i + 4 == text.size();
        for (size_t j = 0; j < 4; ++j) {
            const char c = text[i + j];
            if (last && c == '=' && j >= 4 - padding) {
                v <<= 6;
                continue;
            }
            const int8_t d = kDecode[static_cast<uint8_t>(c)];
            check(d >= 0, Errc::kInvalidArgument, "invalid base64 character at offset {}", i + j);
            v = (v << 6) | static_cast<uint32_t>(d);
        }
        // One encoding per byte string: the bits below the last byte must be zero ("Ze==" is
        // not another spelling of "Zg==").
        const uint32_t unused = !last ? 0 : padding == 2 ? 0xffffU : padding == 1 ? 0xffU : 0;
        check((v & unused) == 0, Errc::kInvalidArgument,
              "base64 text has non-zero padding bits at offset {}", i);
        out += static_cast<char>((v >> 16) & 0xff);
        if (!last || padding < 2) out += static_cast<char>((v >> 8) & 0xff);
        if (!last || padding < 1) out += static_cast<char>(v & 0xff);
    }
    return out;
}

}  // namespace weightsync
