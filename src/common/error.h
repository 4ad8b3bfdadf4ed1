#pragma once
// The one error type of weightsync. Every layer throws weightsync::Error; bindings map the
// code to a typed exception. Codes are grouped so callers can tell a lost peer or a timeout
// (operational, possibly retryable) apart from bad input or a broken invariant.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace weightsync {

enum class Errc {
    kInvalidArgument,  // bad input from the caller (shape, name, option)
    kNotFound,         // a named tensor, key or peer does not exist
    kMismatch,         // two sides disagree (layout fingerprint, size, dtype, chunk count)
    kUnsupported,  // valid request the build or backend cannot serve (e.g. GPU memory on host UCX)
    kTimeout,      // a wait ran past its deadline
    kPeerLost,     // a remote process or the coordinator went away
    kTransport,    // a data-plane operation failed
    kProtocol,     // an out-of-order or malformed control message
    kIo,           // a system call failed
    kCorruption,   // bytes verified and found wrong
    kUnauthenticated,  // a control message or value without the job secret's valid MAC
    kInternal,         // a broken invariant inside weightsync
};

std::string_view errcName(Errc code);

class Error : public std::runtime_error {
  public:
    Error(Errc code, const std::string &message);
    [[nodiscard]] Errc code() const noexcept { return code_; }

  private:
    Errc code_;
};

/// Throws Error(code, formatted message).
template <typename... Args>
[[noreturn]] void fail(Errc code, fmt::format_string<Args...> format, Args &&...args) {
    throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

/// Throws Error(code, message) unless cond holds.
template <typename... Args>
void check(bool cond, Errc code, fmt::format_string<Args...> format, Args &&...args) {
    if (!cond) {
        throw Error(code, fmt::format(format, std::forward<Args>(args)...));
    }
}

}  // namespace weightsync
