#include "control/tcp_store_server.h"

#include "common/log.h"
#include "control/frame.h"
#include "control/store_service.h"
#include "control/wire.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <list>
#include <optional>
#include <vector>

namespace weightsync::control {
namespace {

using std::chrono::milliseconds;

constexpr size_t kReadChunk = 64U << 10;
constexpr int kReadsPerWake = 4;  // at most 256 KiB from one connection per loop iteration
constexpr int kAcceptsPerWake = 64;
constexpr size_t kMaxRefusing = 64;  // refused connections kept open to deliver their error
constexpr auto kLinger = std::chrono::seconds(2);
constexpr auto kAcceptPause = milliseconds(100);  // after EMFILE and the like
constexpr auto kRefusalLogInterval = std::chrono::seconds(5);

std::string errnoText(int err) {
    return std::strerror(err);
}

}  // namespace

/// The event loop: owns the listener and every connection; runs on TcpStoreServer::thread_.
class TcpStoreServer::Loop {
  public:
    Loop(TcpStoreServer &server, ScopedFd listen_fd, ScopedFd wake_read)
        : server_(server),
          listen_(std::move(listen_fd)),
          wake_(std::move(wake_read)),
          scratch_(kReadChunk) {
        ::fcntl(listen_.get(), F_SETFL, ::fcntl(listen_.get(), F_GETFL) | O_NONBLOCK);
        ::fcntl(wake_.get(), F_SETFL, ::fcntl(wake_.get(), F_GETFL) | O_NONBLOCK);
    }

    void run();

  private:
    struct Connection {
        ScopedFd fd;
        std::string peer;
        FrameReader reader;
        std::optional<PendingCall> pending;
        uint64_t pending_revision = 0;  // store revision when pending was last found not ready
        std::string out;                // the frame being sent
        size_t sent = 0;
        Clock::time_point frame_deadline = kNoDeadline;  // while a frame arrives in parts
        Clock::time_point send_deadline = kNoDeadline;   // while out is not sent
        Clock::time_point linger_deadline = kNoDeadline;
        bool refused = false;  // over the connection cap: deliver the error, then close
        bool closing = false;  // deliver out, then close (sent a frame the server cannot use)
        bool eof = false;      // the client closed its end
        bool dead = false;     // remove at the end of this iteration
        std::optional<ConnectionWill> will;             // executed if the connection ends
        RequestAuth auth;                               // with the job secret, if any
        Clock::time_point will_deadline = kNoDeadline;  // no frame until then: the client is gone
    };

    void iterate();
    void acceptAll(Clock::time_point now);
    void refuse(ScopedFd fd, const std::string &peer, Clock::time_point now);
    short events(const Connection &c) const;
    Clock::time_point nextDeadline(Clock::time_point now) const;
    void advance(Connection &c, short revents, Clock::time_point now);
    void readSome(Connection &c);
    void flush(Connection &c);
    void pump(Connection &c, Clock::time_point now);
    void queue(Connection &c, const std::string &payload, Clock::time_point now);
    void closeWith(Connection &c, Errc code, const std::string &why, Clock::time_point now);
    void executeWill(Connection &c, const std::string &why);
    void drainWake();

    TcpStoreServer &server_;
    ScopedFd listen_;
    ScopedFd wake_;
    std::vector<char> scratch_;
    std::list<Connection> connections_;
    std::vector<pollfd> fds_;
    uint64_t checked_revision_ = 0;
    Clock::time_point accept_paused_until_{};
    Clock::time_point last_refusal_log_{};
    size_t refusals_unlogged_ = 0;
};

void TcpStoreServer::Loop::run() {
    auto log = logger("control");
    while (!server_.stopping_) {
        try {
            iterate();
        } catch (const std::exception &e) {  // e.g. bad_alloc: drop nothing, retry shortly
            log->error("store server loop: {}", e.what());
            std::this_thread::sleep_for(milliseconds(10));
        }
    }
    for (auto &c : connections_) ::shutdown(c.fd.get(), SHUT_RDWR);
    connections_.clear();
    server_.open_connections_ = 0;
}

void TcpStoreServer::Loop::iterate() {
    const auto before = Clock::now();
    fds_.clear();
    fds_.push_back({wake_.get(), POLLIN, 0});
    const bool accepting = before >= accept_paused_until_;
    fds_.push_back({accepting ? listen_.get() : -1, POLLIN, 0});
    for (const auto &c : connections_) fds_.push_back({c.fd.get(), events(c), 0});

    int timeout = 0;
    if (server_.store_->revision() == checked_revision_) {
        const auto deadline = nextDeadline(before);
        if (deadline == kNoDeadline) {
            timeout = -1;
        } else if (deadline > before) {
            const auto ms = std::chrono::ceil<milliseconds>(deadline - before).count();
            timeout = static_cast<int>(std::min<int64_t>(ms, INT_MAX));
        }
    }
    const int rc = ::poll(fds_.data(), fds_.size(), timeout);
    if (rc < 0 && errno != EINTR) fail(Errc::kIo, "poll failed: {}", errnoText(errno));
    if (server_.stopping_) return;
    const auto now = Clock::now();
    if (rc > 0 && (fds_[0].revents & POLLIN) != 0) drainWake();

    // A parked call is retried once the store's revision moved or its deadline passed. Writes
    // made during this pass (and in-process writes, which wake the loop) make the next poll
    // return at once.
    checked_revision_ = server_.store_->revision();
    size_t i = 2;
    for (auto &c : connections_) {
        const short revents = rc > 0 ? fds_[i].revents : short{0};
        ++i;
        try {
            advance(c, revents, now);
        } catch (const std::exception &e) {
            logger("control")->warn("store client {}: {}; connection dropped", c.peer, e.what());
            c.dead = true;
        }
    }
    for (auto &c : connections_) {
        if (c.dead && c.will) executeWill(c, "its connection closed");
    }
    connections_.remove_if([](const Connection &c) { return c.dead; });
    if (rc > 0 && accepting && (fds_[1].revents & POLLIN) != 0) acceptAll(now);
    server_.open_connections_ = static_cast<size_t>(std::count_if(
        connections_.begin(), connections_.end(), [](const Connection &c) { return !c.refused; }));
}

void TcpStoreServer::Loop::drainWake() {
    std::array<char, 256> bytes{};
    while (::read(wake_.get(), bytes.data(), bytes.size()) > 0) {
    }
}

void TcpStoreServer::Loop::acceptAll(Clock::time_point now) {
    for (int n = 0; n < kAcceptsPerWake; ++n) {
        std::string peer;
        int error = 0;
        ScopedFd fd = acceptTcp(listen_.get(), peer, &error);
        if (!fd.valid()) {
            if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR ||
                error == ECONNABORTED) {
                return;
            }
            logger("control")->warn("store server accept failed: {}; pausing accepts", peer);
            accept_paused_until_ = now + kAcceptPause;  // e.g. EMFILE: do not spin on it
            return;
        }
        if (server_.open_connections_ >= server_.limits_.max_connections) {
            refuse(std::move(fd), peer, now);
            continue;
        }
        logger("control")->debug("store client connected from {}", peer);
        auto &c = connections_.emplace_back();
        c.fd = std::move(fd);
        c.peer = peer;
        c.reader = FrameReader(server_.limits_.max_frame_bytes);
        ++server_.open_connections_;
    }
}

void TcpStoreServer::Loop::refuse(ScopedFd fd, const std::string &peer, Clock::time_point now) {
    const std::string why = fmt::format("too many connections (the coordinator allows {})",
                                        server_.limits_.max_connections);
    ++refusals_unlogged_;
    if (now - last_refusal_log_ >= kRefusalLogInterval) {
        logger("control")->warn("store server refused {} connection(s), the last from {}: {}",
                                refusals_unlogged_, peer, why);
        refusals_unlogged_ = 0;
        last_refusal_log_ = now;
    }
    const std::string frame = encodeFrame(connectionErrorReply(Errc::kPeerLost, why));
    const size_t refusing = static_cast<size_t>(std::count_if(
        connections_.begin(), connections_.end(), [](const Connection &c) { return c.refused; }));
    if (refusing >= kMaxRefusing) {  // best effort, then close at once
        [[maybe_unused]] const ssize_t n =
            ::send(fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    auto &c = connections_.emplace_back();
    c.fd = std::move(fd);
    c.peer = peer;
    c.refused = true;
    c.linger_deadline = now + kLinger;
    c.out = frame;
    c.send_deadline = c.linger_deadline;
    flush(c);
}

short TcpStoreServer::Loop::events(const Connection &c) const {
    if (c.sent < c.out.size()) return POLLOUT;
    if (c.refused || c.closing) return POLLIN;  // read and discard until the client closes
    if (c.pending) return POLLRDHUP;            // only notice a client that goes away
    return POLLIN | POLLRDHUP;
}

Clock::time_point TcpStoreServer::Loop::nextDeadline(Clock::time_point now) const {
    Clock::time_point next = kNoDeadline;
    if (now < accept_paused_until_) next = accept_paused_until_;
    for (const auto &c : connections_) {
        next =
            std::min({next, c.frame_deadline, c.send_deadline, c.linger_deadline, c.will_deadline});
        if (c.pending) next = std::min(next, c.pending->deadline);
    }
    return next;
}

void TcpStoreServer::Loop::advance(Connection &c, short revents, Clock::time_point now) {
    if ((revents & (POLLERR | POLLNVAL)) != 0) {
        c.dead = true;
        return;
    }
    if ((revents & POLLOUT) != 0) flush(c);
    if ((revents & POLLIN) != 0) readSome(c);
    if ((revents & (POLLHUP | POLLRDHUP)) != 0 && (revents & POLLIN) == 0) c.eof = true;
    if (c.dead) return;

    if (c.refused || c.closing) {
        if ((c.eof && c.out.empty()) || now >= c.linger_deadline) c.dead = true;
        return;
    }
    if (c.will && now >= c.will_deadline) {  // stopped or hung: gone all the same
        executeWill(c, fmt::format("no keep-alive within {} ms", c.will->ttl.count()));
        c.dead = true;
        return;
    }
    if (c.pending && c.eof) {  // the client left while its call was parked
        c.dead = true;
        return;
    }
    if (c.pending) {
        const uint64_t revision = server_.store_->revision();
        if (revision != c.pending_revision || now >= c.pending->deadline) {
            c.pending_revision = revision;
            if (auto reply = resumePending(*server_.store_, *c.pending, now)) {
                c.pending.reset();
                queue(c, *reply, now);
            }
        }
    }
    pump(c, now);
    if (c.closing || c.dead) return;
    if (c.eof && !c.pending && c.out.empty()) {
        c.dead = true;  // served everything it sent
        return;
    }
    if (!c.out.empty() && now >= c.send_deadline) {
        logger("control")->warn("store client {} took no reply for {} ms; connection dropped",
                                c.peer, server_.limits_.send_timeout.count());
        c.dead = true;
        return;
    }
    if (!c.pending && c.out.empty() && c.reader.partial()) {
        if (c.frame_deadline == kNoDeadline) {
            c.frame_deadline = now + server_.limits_.read_timeout;
        } else if (now >= c.frame_deadline) {
            closeWith(c, Errc::kTimeout,
                      fmt::format("no complete frame within {} ms ({} bytes arrived)",
                                  server_.limits_.read_timeout.count(), c.reader.buffered()),
                      now);
        }
    } else {
        c.frame_deadline = kNoDeadline;
    }
}

void TcpStoreServer::Loop::readSome(Connection &c) {
    for (int n = 0; n < kReadsPerWake; ++n) {
        const ssize_t got = ::recv(c.fd.get(), scratch_.data(), scratch_.size(), MSG_DONTWAIT);
        if (got > 0) {
            if (c.refused || c.closing) continue;  // discarded
            try {
                c.reader.append({scratch_.data(), static_cast<size_t>(got)});
            } catch (const Error &e) {
                closeWith(c, e.code(), wire::bareMessage(e), Clock::now());
                return;
            }
            continue;
        }
        if (got == 0) {
            c.eof = true;
            return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.dead = true;
        return;
    }
}

void TcpStoreServer::Loop::flush(Connection &c) {
    while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        c.dead = true;  // reset or broken pipe: the client is gone
        return;
    }
    std::string().swap(c.out);  // a large reply's buffer is not kept
    c.sent = 0;
    c.send_deadline = kNoDeadline;
    // The last word to a connection being closed: half-close, then read until the client
    // closes too (closing at once could reset the connection before it reads the error).
    if (c.refused || c.closing) ::shutdown(c.fd.get(), SHUT_WR);
}

void TcpStoreServer::Loop::queue(Connection &c, const std::string &payload, Clock::time_point now) {
    c.out = encodeFrame(payload, UINT32_MAX);
    c.sent = 0;
    c.send_deadline = now + server_.limits_.send_timeout;
    flush(c);
}

void TcpStoreServer::Loop::pump(Connection &c, Clock::time_point now) {
    while (!c.dead && !c.closing && !c.pending && c.out.empty()) {
        std::optional<std::string> frame;
        try {
            frame = c.reader.next();
        } catch (const Error &e) {
            closeWith(c, e.code(), wire::bareMessage(e), now);
            return;
        }
        if (!frame) return;
        PendingCall pending;
        const uint64_t revision = server_.store_->revision();
        if (server_.limits_.job_secret && !c.auth.secret) {
            c.auth.secret = server_.limits_.job_secret;
            c.auth.nonce = randomHex(16);
        }
        std::optional<std::string> reply =
            handleRequest(*server_.store_, *frame, server_.limits_.max_call_timeout, pending,
                          c.will, &c.auth, c.peer);
        // Any frame from a client with a will is a sign of life.
        c.will_deadline = c.will ? now + c.will->ttl : kNoDeadline;
        if (reply) {
            queue(c, *reply, now);
        } else {
            c.pending = std::move(pending);
            c.pending_revision = revision;
        }
    }
}

void TcpStoreServer::Loop::executeWill(Connection &c, const std::string &why) {
    if (!c.will || server_.stopping_) return;
    logger("control")->warn("client {} of will '{}' is gone ({}): executing its will", c.peer,
                            c.will->key, why);
    server_.store_->set(c.will->key, c.will->value);
    c.will.reset();
}

void TcpStoreServer::Loop::closeWith(Connection &c, Errc code, const std::string &why,
                                     Clock::time_point now) {
    logger("control")->warn("store client {}: {}; closing the connection", c.peer, why);
    c.closing = true;
    c.pending.reset();
    c.reader = FrameReader(server_.limits_.max_frame_bytes);  // frees what was buffered
    c.frame_deadline = kNoDeadline;
    c.linger_deadline = now + kLinger;
    c.out = encodeFrame(connectionErrorReply(code, why));
    c.sent = 0;
    c.send_deadline = c.linger_deadline;
    flush(c);
}

TcpStoreServer::TcpStoreServer(const std::string &host, int port,
                               std::shared_ptr<MemoryStore> store, const ServerLimits &limits)
    : host_(host),
      store_(store ? std::move(store) : std::make_shared<MemoryStore>()),
      limits_(limits) {
    check(limits_.max_connections > 0, Errc::kInvalidArgument,
          "the coordinator needs max_connections >= 1");
    check(limits_.max_frame_bytes >= 1024, Errc::kInvalidArgument,
          "the coordinator's frame limit of {} bytes is too small (at least 1024)",
          limits_.max_frame_bytes);
    check(limits_.read_timeout.count() > 0 && limits_.send_timeout.count() > 0 &&
              limits_.max_call_timeout.count() >= 0,
          Errc::kInvalidArgument, "the coordinator's timeouts must be positive");
    ScopedFd listen_fd = listenTcp(host, port);
    port_ = boundPort(listen_fd.get());
    int pipe_fds[2];
    check(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0, Errc::kIo, "pipe2 failed: {}",
          std::strerror(errno));
    ScopedFd wake_read(pipe_fds[0]);
    wake_write_.reset(pipe_fds[1]);
    loop_ = std::make_unique<Loop>(*this, std::move(listen_fd), std::move(wake_read));
    // Writes by in-process users of the store (the Python trainer's job_store) wake the loop.
    listener_id_ = store_->addWriteListener([fd = wake_write_.get()] {
        const char byte = 0;
        [[maybe_unused]] const ssize_t n = ::write(fd, &byte, 1);  // full pipe: already woken
    });
    thread_ = std::thread([this] { loop_->run(); });
    logger("control")->info("store server listening on {}:{} (at most {} connections)", host_,
                            port_, limits_.max_connections);
}

TcpStoreServer::~TcpStoreServer() {
    stop();
}

void TcpStoreServer::stop() {
    std::lock_guard stop_lock(stop_mutex_);
    stopping_ = true;
    if (!thread_.joinable()) return;
    store_->removeWriteListener(listener_id_);
    const char byte = 0;
    [[maybe_unused]] const ssize_t n = ::write(wake_write_.get(), &byte, 1);
    thread_.join();
    loop_.reset();  // closes the listener
    logger("control")->info("store server on {}:{} stopped", host_, port_);
}

}  // namespace weightsync::control
