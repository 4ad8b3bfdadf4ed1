#pragma once
// A job's shared secret and what it authenticates (docs/security.md): HMAC-SHA256 (libsodium)
// over every control request of a connection, with the coordinator's per-connection nonce and a
// strictly increasing counter (no replay), and over every value the job stores
// (AuthenticatedStore). Without libsodium at build time, every JobSecret is refused
// (kUnsupported). The secret is read at the edges (the CLI's --job-secret-file or
// WEIGHTSYNC_JOB_SECRET, Python's job_secret=), never from the environment here.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace weightsync::control {

class JobSecret {
  public:
    /// At least 16 bytes (kInvalidArgument otherwise).
    explicit JobSecret(std::string bytes);
    /// The secret in a file (one trailing newline ignored); kIo/kInvalidArgument naming it.
    static std::shared_ptr<const JobSecret> fromFile(const std::string &path);
    /// 32 random bytes, as 64 hex digits (printable: it can be written to a file).
    static std::shared_ptr<const JobSecret> generate();

    /// HMAC-SHA256 of message under the secret (32 bytes).
    [[nodiscard]] std::string mac(std::string_view message) const;
    /// Whether mac is message's MAC (constant time).
    [[nodiscard]] bool verify(std::string_view message, std::string_view mac) const;
    [[nodiscard]] const std::string &bytes() const { return bytes_; }

  private:
    std::string bytes_;
};

/// n random bytes as 2n hex digits.
std::string randomHex(size_t n);
std::string toHex(std::string_view bytes);
/// Throws kUnauthenticated on anything but 2n hex digits.
std::string fromHex(std::string_view hex);

/// One connection's request authentication on the coordinator: its nonce (sent in the hello
/// reply) and the last request counter it accepted.
struct RequestAuth {
    std::shared_ptr<const JobSecret> secret;
    std::string nonce;  // set with the secret
    uint64_t last_seq = 0;
};

/// What a request's MAC covers: the connection's nonce and the request as sent without "mac".
std::string requestMacInput(std::string_view nonce, std::string_view request_without_mac);

}  // namespace weightsync::control
