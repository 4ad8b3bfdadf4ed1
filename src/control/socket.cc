#include "control/socket.h"

#include "common/error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

namespace weightsync::control {
namespace {

constexpr size_t kRecvChunk = 64U << 10;

std::string errnoText(int err) {
    return std::strerror(err);
}

bool isPeerGone(int err) {
    return err == ECONNRESET || err == EPIPE || err == ECONNABORTED || err == ENOTCONN ||
           err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH;
}

/// Milliseconds left until deadline for poll(): -1 = forever, 0 = already passed.
int pollTimeout(Clock::time_point deadline) {
    if (deadline == kNoDeadline) return -1;
    const auto now = Clock::now();
    if (now >= deadline) return 0;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    return static_cast<int>(std::min<int64_t>(left, INT_MAX));
}

/// Waits until fd is ready for events; false when the deadline passed first.
bool pollFor(int fd, short events, Clock::time_point deadline) {
    while (true) {
        pollfd pfd{fd, events, 0};
        const int rc = ::poll(&pfd, 1, pollTimeout(deadline));
        if (rc > 0) return true;  // readiness or an error condition: the next call reports it
        if (rc == 0) return false;
        if (errno != EINTR) fail(Errc::kIo, "poll failed: {}", errnoText(errno));
    }
}

struct AddrInfoDeleter {
    void operator()(addrinfo *info) const { ::freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr resolve(const std::string &host, int port, bool passive, std::string &error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo *result = nullptr;
    const std::string service = std::to_string(port);
    const int rc =
        ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &result);
    if (rc != 0) {
        error = fmt::format("cannot resolve '{}': {}", host, ::gai_strerror(rc));
        return nullptr;
    }
    return AddrInfoPtr(result);
}

void setNoDelay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void sendAll(int fd, const char *data, size_t size, Clock::time_point deadline) {
    while (size > 0) {
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            size -= static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            check(pollFor(fd, POLLOUT, deadline), Errc::kTimeout, "send timed out");
            continue;
        }
        if (n < 0 && isPeerGone(errno)) fail(Errc::kPeerLost, "send: {}", errnoText(errno));
        fail(Errc::kIo, "send failed: {}", errnoText(errno));
    }
}

void recvAll(int fd, char *data, size_t size, Clock::time_point deadline) {
    while (size > 0) {
        const ssize_t n = ::recv(fd, data, size, MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            size -= static_cast<size_t>(n);
            continue;
        }
        if (n == 0) fail(Errc::kPeerLost, "connection closed by peer");
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            check(pollFor(fd, POLLIN, deadline), Errc::kTimeout, "receive timed out");
            continue;
        }
        if (isPeerGone(errno)) fail(Errc::kPeerLost, "recv: {}", errnoText(errno));
        fail(Errc::kIo, "recv failed: {}", errnoText(errno));
    }
}

}  // namespace

ScopedFd &ScopedFd::operator=(ScopedFd &&other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
}

void ScopedFd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

ScopedFd listenTcp(const std::string &host, int port) {
    check(port >= 0 && port <= 65535, Errc::kInvalidArgument, "port {} out of range", port);
    std::string error;
    auto info = resolve(host, port, true, error);
    check(info != nullptr, Errc::kIo, "cannot listen on {}:{}: {}", host, port, error);
    for (addrinfo *ai = info.get(); ai != nullptr; ai = ai->ai_next) {
        ScopedFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd.valid()) {
            error = errnoText(errno);
            continue;
        }
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 ||
            ::listen(fd.get(), SOMAXCONN) != 0) {
            error = errnoText(errno);
            continue;
        }
        return fd;
    }
    fail(Errc::kIo, "cannot listen on {}:{}: {}", host, port, error);
}

int boundPort(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    check(::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0, Errc::kIo,
          "getsockname failed: {}", errnoText(errno));
    if (addr.ss_family == AF_INET6) {
        return ntohs(reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port);
    }
    return ntohs(reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
}

ScopedFd acceptTcp(int listen_fd, std::string &peer, int *error) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ScopedFd fd(::accept4(listen_fd, reinterpret_cast<sockaddr *>(&addr), &len, SOCK_CLOEXEC));
    if (!fd.valid()) {
        const int err = errno;
        if (error != nullptr) *error = err;
        peer = errnoText(err);
        return fd;
    }
    char host[NI_MAXHOST] = {};
    char service[NI_MAXSERV] = {};
    if (::getnameinfo(reinterpret_cast<sockaddr *>(&addr), len, host, sizeof host, service,
                      sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        peer = fmt::format("{}:{}", host, service);
    } else {
        peer = "unknown peer";
    }
    setNoDelay(fd.get());
    return fd;
}

ScopedFd connectTcp(const std::string &host, int port, Clock::time_point deadline,
                    std::string &error) {
    auto info = resolve(host, port, false, error);
    if (!info) return {};
    for (addrinfo *ai = info.get(); ai != nullptr; ai = ai->ai_next) {
        ScopedFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                             ai->ai_protocol));
        if (!fd.valid()) {
            error = errnoText(errno);
            continue;
        }
        if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                error = errnoText(errno);
                continue;
            }
            if (!pollFor(fd.get(), POLLOUT, deadline)) {
                error = "connect timed out";
                continue;
            }
            int so_error = 0;
            socklen_t len = sizeof so_error;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
            if (so_error != 0) {
                error = errnoText(so_error);
                continue;
            }
        }
        setNoDelay(fd.get());
        return fd;
    }
    return {};
}

void sendFrame(int fd, const std::string &payload, Clock::time_point deadline) {
    check(payload.size() <= kMaxFrameBytes, Errc::kInvalidArgument,
          "message of {} bytes exceeds the {} byte frame limit", payload.size(), kMaxFrameBytes);
    const uint32_t size_be = htonl(static_cast<uint32_t>(payload.size()));
    char header[4];
    std::memcpy(header, &size_be, sizeof header);
    sendAll(fd, header, sizeof header, deadline);
    sendAll(fd, payload.data(), payload.size(), deadline);
}

std::string recvFrame(int fd, Clock::time_point deadline, uint32_t max_bytes) {
    char header[4];
    recvAll(fd, header, sizeof header, deadline);
    uint32_t size_be = 0;
    std::memcpy(&size_be, header, sizeof size_be);
    const uint32_t size = ntohl(size_be);
    check(size <= max_bytes, Errc::kProtocol,
          "peer announced a {} byte frame (limit {}); not a weightsync store peer?", size,
          max_bytes);
    // Grow with what arrives: a peer that announces a large frame and sends little costs little.
    std::string payload;
    size_t have = 0;
    while (have < size) {
        const size_t grow = std::min<size_t>(size - have, std::max<size_t>(have, kRecvChunk));
        payload.resize(have + grow);
        recvAll(fd, payload.data() + have, grow, deadline);
        have += grow;
    }
    return payload;
}

}  // namespace weightsync::control
