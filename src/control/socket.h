#pragma once
// POSIX socket plumbing for the TCP store: an owning fd, listen/connect helpers and
// length-prefixed frames (u32 big-endian byte count, then the payload). Internal to control/.
//
// Failures are reported as weightsync::Error:
//   kPeerLost  - the other side closed or reset the connection (EOF, ECONNRESET, EPIPE)
//   kTimeout   - the deadline passed before the whole frame moved
//   kProtocol  - a frame larger than kMaxFrameBytes (control/frame.h) was announced
//   kIo        - any other system call failure

#include "control/clock.h"
#include "control/frame.h"

#include <cstdint>
#include <string>
#include <utility>

namespace weightsync::control {

class ScopedFd {
  public:
    ScopedFd() = default;
    explicit ScopedFd(int fd) : fd_(fd) {}
    ScopedFd(const ScopedFd &) = delete;
    ScopedFd &operator=(const ScopedFd &) = delete;
    ScopedFd(ScopedFd &&other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    ScopedFd &operator=(ScopedFd &&other) noexcept;
    ~ScopedFd() { reset(); }

    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    void reset(int fd = -1);

  private:
    int fd_ = -1;
};

/// Binds and listens on host:port (port 0 = ephemeral). Throws kIo naming the address.
ScopedFd listenTcp(const std::string &host, int port);
/// The local port a bound socket ended up on.
int boundPort(int fd);
/// Accepts one pending connection (TCP_NODELAY set). peer receives "address:port" of the other
/// side; on failure, an invalid fd, the error text in peer and its errno in *error (if given).
ScopedFd acceptTcp(int listen_fd, std::string &peer, int *error = nullptr);
/// One connect attempt that gives up at deadline. Returns an invalid fd and sets error on
/// failure (refused, unreachable, timed out) so callers can retry.
ScopedFd connectTcp(const std::string &host, int port, Clock::time_point deadline,
                    std::string &error);

void sendFrame(int fd, const std::string &payload, Clock::time_point deadline);
/// Receives one frame. The payload buffer grows as bytes arrive (never to the announced size
/// up front), and an announced size over max_bytes is refused before any of it is read.
std::string recvFrame(int fd, Clock::time_point deadline, uint32_t max_bytes = kMaxFrameBytes);

}  // namespace weightsync::control
