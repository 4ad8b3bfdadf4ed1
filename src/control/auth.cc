#include "control/auth.h"

#include "common/error.h"

#ifdef WEIGHTSYNC_HAVE_SODIUM
#include <sodium.h>
#endif

#include <fstream>
#include <mutex>
#include <sstream>

namespace weightsync::control {

#ifdef WEIGHTSYNC_HAVE_SODIUM

namespace {

void initSodium() {
    static std::once_flag once;
    std::call_once(once, [] {
        check(sodium_init() >= 0, Errc::kInternal, "libsodium could not be initialised");
    });
}

}  // namespace

JobSecret::JobSecret(std::string bytes) : bytes_(std::move(bytes)) {
    check(bytes_.size() >= 16, Errc::kInvalidArgument,
          "a job secret needs at least 16 bytes, got {}", bytes_.size());
    initSodium();
}

std::shared_ptr<const JobSecret> JobSecret::fromFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    check(in.good(), Errc::kIo, "cannot read the job secret file '{}'", path);
    std::stringstream text;
    text << in.rdbuf();
    std::string bytes = text.str();
    if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
    check(bytes.size() >= 16, Errc::kInvalidArgument,
          "the job secret file '{}' holds {} bytes; at least 16 are needed", path, bytes.size());
    return std::make_shared<const JobSecret>(std::move(bytes));
}

std::shared_ptr<const JobSecret> JobSecret::generate() {
    return std::make_shared<const JobSecret>(randomHex(32));
}

std::string JobSecret::mac(std::string_view message) const {
    std::string out(crypto_auth_hmacsha256_BYTES, '\0');
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char *>(bytes_.data()),
                                bytes_.size());
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char *>(message.data()),
                                  message.size());
    crypto_auth_hmacsha256_final(&state, reinterpret_cast<unsigned char *>(out.data()));
    return out;
}

bool JobSecret::verify(std::string_view message, std::string_view mac) const {
    if (mac.size() != crypto_auth_hmacsha256_BYTES) return false;
    const std::string want = this->mac(message);
    return sodium_memcmp(want.data(), mac.data(), want.size()) == 0;
}

std::string randomHex(size_t n) {
    initSodium();
    std::string bytes(n, '\0');
    randombytes_buf(bytes.data(), n);
    return toHex(bytes);
}

#else  // no libsodium: no job secrets

namespace {
[[noreturn]] void initSodium() {
    fail(Errc::kUnsupported, "this build has no job secrets (libsodium-dev was not found)");
}
}  // namespace
JobSecret::JobSecret(std::string bytes) : bytes_(std::move(bytes)) {
    initSodium();
}
std::shared_ptr<const JobSecret> JobSecret::fromFile(const std::string & /*path*/) {
    initSodium();
}
std::shared_ptr<const JobSecret> JobSecret::generate() {
    initSodium();
}
std::string JobSecret::mac(std::string_view /*message*/) const {
    return {};
}
bool JobSecret::verify(std::string_view /*message*/, std::string_view /*mac*/) const {
    return false;
}
std::string randomHex(size_t /*n*/) {
    initSodium();
}

#endif

std::string toHex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 15]);
    }
    return out;
}

std::string fromHex(std::string_view hex) {
    check(hex.size() % 2 == 0, Errc::kUnauthenticated, "a MAC must be hex digits");
    const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        fail(Errc::kUnauthenticated, "a MAC must be hex digits");
    };
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<char>(digit(hex[2 * i]) * 16 + digit(hex[2 * i + 1]));
    }
    return out;
}

std::string requestMacInput(std::string_view nonce, std::string_view request_without_mac) {
    std::string input;
    input.reserve(nonce.size() + 1 + request_without_mac.size());
    input.append(nonce).append("\n").append(request_without_mac);
    return input;
}

}  // namespace weightsync::control
