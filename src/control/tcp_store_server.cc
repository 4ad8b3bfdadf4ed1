#include "control/tcp_store_server.h"

#include "common/log.h"
#include "control/wire.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weightsync::control {
namespace {

using nlohmann::json;

constexpr auto kReplySendTimeout = std::chrono::seconds(30);

std::string str(const json &request, const char *field) {
    return request.at(field).get<std::string>();
}

std::string bytes(const json &request, const char *field) {
    return wire::base64Decode(request.at(field).get<std::string>());
}

std::chrono::milliseconds timeoutOf(const json &request, const char *field = "timeout_ms") {
    return std::chrono::milliseconds(request.at(field).get<int64_t>());
}

}  // namespace

TcpStoreServer::TcpStoreServer(const std::string &host, int port,
                               std::shared_ptr<MemoryStore> store)
    : host_(host), store_(store ? std::move(store) : std::make_shared<MemoryStore>()) {
    listen_fd_ = listenTcp(host, port);
    port_ = boundPort(listen_fd_.get());
    int pipe_fds[2];
    check(::pipe2(pipe_fds, O_CLOEXEC) == 0, Errc::kIo, "pipe2 failed: {}", std::strerror(errno));
    wake_read_.reset(pipe_fds[0]);
    wake_write_.reset(pipe_fds[1]);
    accept_thread_ = std::thread([this] { acceptLoop(); });
    logger("control")->info("store server listening on {}:{}", host_, port_);
}

TcpStoreServer::~TcpStoreServer() {
    stop();
}

size_t TcpStoreServer::connectionCount() const {
    std::lock_guard lock(mutex_);
    size_t open = 0;
    for (const auto &connection : connections_) open += connection.finished ? 0 : 1;
    return open;
}

void TcpStoreServer::stop() {
    std::lock_guard stop_lock(stop_mutex_);
    stopping_ = true;
    if (accept_thread_.joinable()) {
        const char byte = 0;
        [[maybe_unused]] const ssize_t n = ::write(wake_write_.get(), &byte, 1);
        accept_thread_.join();
        listen_fd_.reset();
        logger("control")->info("store server on {}:{} stopping", host_, port_);
    }
    std::list<Connection> closing;
    {
        std::lock_guard lock(mutex_);
        for (auto &connection : connections_) {
            if (connection.fd.valid()) ::shutdown(connection.fd.get(), SHUT_RDWR);
        }
        closing.splice(closing.end(), connections_);
    }
    for (auto &connection : closing) {
        if (connection.thread.joinable()) connection.thread.join();
    }
}

void TcpStoreServer::reapFinishedLocked() {
    for (auto it = connections_.begin(); it != connections_.end();) {
        if (it->finished) {
            it->thread.join();
            it = connections_.erase(it);
        } else {
            ++it;
        }
    }
}

void TcpStoreServer::acceptLoop() {
    auto log = logger("control");
    while (!stopping_) {
        pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        const int rc = ::poll(fds, 2, -1);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) {
            log->error("store server poll failed: {}", std::strerror(errno));
            return;
        }
        if (stopping_ || (fds[1].revents & POLLIN) != 0) return;
        if ((fds[0].revents & POLLIN) == 0) continue;
        std::string peer;
        ScopedFd fd = acceptTcp(listen_fd_.get(), peer);
        if (!fd.valid()) {
            log->warn("store server accept failed: {}", peer);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // e.g. EMFILE
            continue;
        }
        log->debug("store client connected from {}", peer);
        std::lock_guard lock(mutex_);
        reapFinishedLocked();
        auto &connection = connections_.emplace_back();
        connection.fd = std::move(fd);
        connection.thread = std::thread([this, &connection, peer] {
            serve(connection);
            logger("control")->debug("store client {} disconnected", peer);
        });
    }
}

void TcpStoreServer::serve(Connection &connection) {
    const int fd = connection.fd.get();
    std::optional<Will> will;
    std::string gone = "its connection closed";
    try {
        while (!stopping_) {
            // A connection with a will must speak (a keep-alive) within the will's ttl.
            const auto deadline = will ? deadlineAfter(will->ttl) : kNoDeadline;
            std::string frame;
            try {
                frame = recvFrame(fd, deadline);
            } catch (const Error &e) {
                if (will && e.code() == Errc::kTimeout) {
                    gone = fmt::format("no keep-alive within {} ms", will->ttl.count());
                }
                throw;
            }
            json reply = handle(wire::parse(frame), fd, will);
            sendFrame(fd, wire::dump(reply), deadlineAfter(kReplySendTimeout));
        }
    } catch (const Error &e) {
        if (e.code() != Errc::kPeerLost && !stopping_ && !will) {
            logger("control")->warn("store connection dropped: {}", e.what());
        }
    } catch (const std::exception &e) {
        logger("control")->warn("store connection dropped: {}", e.what());
    }
    if (will && !stopping_) {
        logger("control")->warn("client of will '{}' is gone ({}): executing its will", will->key,
                                gone);
        store_->set(will->key, will->value);
    }
    std::lock_guard lock(mutex_);
    connection.fd.reset();
    connection.finished = true;
}

json TcpStoreServer::handle(const json &request, int fd, std::optional<Will> &will) {
    json reply = json::object();
    reply["id"] = request.value("id", json());
    try {
        const std::string op = request.at("op").get<std::string>();
        const auto cancelled = [this, fd] { return stopping_.load() || peerClosed(fd); };
        if (op == "hello") {
            reply["version"] = wire::kProtocolVersion;
            reply["revision"] = store_->revision();
        } else if (op == "set") {
            store_->set(str(request, "key"), bytes(request, "value"));
        } else if (op == "get") {
            auto value = store_->get(str(request, "key"));
            reply["found"] = value.has_value();
            if (value) reply["value"] = wire::base64Encode(*value);
        } else if (op == "wait") {
            auto value =
                store_->waitCancellable(str(request, "key"), timeoutOf(request), cancelled);
            reply["value"] = wire::base64Encode(value);
        } else if (op == "compare_set") {
            std::optional<std::string> expected;
            if (!request.at("expected").is_null()) {
                expected = bytes(request, "expected");
            }
            reply["swapped"] =
                store_->compareSet(str(request, "key"), expected, bytes(request, "desired"));
        } else if (op == "add") {
            reply["value"] = store_->add(str(request, "key"), request.at("delta").get<int64_t>());
        } else if (op == "list") {
            reply["entries"] = wire::entriesToJson(store_->list(str(request, "prefix")));
        } else if (op == "watch") {
            reply["entries"] = wire::entriesToJson(store_->watchCancellable(
                str(request, "prefix"), request.at("after_revision").get<uint64_t>(),
                timeoutOf(request), cancelled));
        } else if (op == "erase") {
            store_->erase(str(request, "key"));
        } else if (op == "erase_prefix") {
            reply["erased"] = store_->erasePrefix(str(request, "prefix"));
        } else if (op == "will") {
            const auto ttl = timeoutOf(request, "ttl_ms");
            check(ttl.count() > 0, Errc::kInvalidArgument, "a will needs a positive ttl_ms");
            will = Will{str(request, "key"), bytes(request, "value"), ttl};
        } else if (op == "keep_alive") {
            check(will.has_value(), Errc::kProtocol, "keep_alive on a connection without a will");
        } else if (op == "release_will") {
            will.reset();
        } else {
            fail(Errc::kProtocol, "unknown store op '{}'", op);
        }
        reply["ok"] = true;
    } catch (const Error &e) {
        reply["ok"] = false;
        reply["code"] = wire::codeName(e.code());
        reply["error"] = wire::bareMessage(e);
    } catch (const json::exception &e) {
        reply["ok"] = false;
        reply["code"] = wire::codeName(Errc::kProtocol);
        reply["error"] = fmt::format("malformed store request: {}", e.what());
    } catch (const std::exception &e) {
        reply["ok"] = false;
        reply["code"] = wire::codeName(Errc::kInternal);
        reply["error"] = fmt::format("coordinator failed to serve the request: {}", e.what());
    }
    return reply;
}

}  // namespace weightsync::control
