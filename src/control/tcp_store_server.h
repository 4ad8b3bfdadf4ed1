#pragma once
// Serves a MemoryStore over TCP: length-prefixed JSON requests, one thread per connection, so a
// client blocked in wait/watch never delays another client. A connection may carry its client's
// last will: when it closes, or stays silent past the will's ttl, the server sets the will's key.
// stop() (and the destructor) closes the listener and every connection promptly; blocked clients
// then see EOF (Errc::kPeerLost).

#include "control/memory_store.h"
#include "control/socket.h"

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace weightsync::control {

class TcpStoreServer {
  public:
    /// Binds host:port (port 0 = ephemeral) and starts accepting. A null store creates a fresh
    /// MemoryStore. Throws Errc::kIo when the address cannot be bound.
    explicit TcpStoreServer(const std::string &host = "127.0.0.1", int port = 0,
                            std::shared_ptr<MemoryStore> store = nullptr);
    ~TcpStoreServer();
    TcpStoreServer(const TcpStoreServer &) = delete;
    TcpStoreServer &operator=(const TcpStoreServer &) = delete;

    [[nodiscard]] const std::string &host() const { return host_; }
    /// The port actually bound (the ephemeral one when constructed with port 0).
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] const std::shared_ptr<MemoryStore> &store() const { return store_; }
    /// Connections currently open.
    [[nodiscard]] size_t connectionCount() const;

    /// Stops accepting, shuts down every connection and joins all threads. Idempotent.
    void stop();

  private:
    struct Connection {
        ScopedFd fd;
        std::thread thread;
        std::atomic<bool> finished{false};
    };

    /// A client's last will, bound to its connection (see control::LastWill).
    struct Will {
        std::string key;
        std::string value;
        std::chrono::milliseconds ttl{0};
    };

    void acceptLoop();
    void serve(Connection &connection);
    nlohmann::json handle(const nlohmann::json &request, int fd, std::optional<Will> &will);
    void reapFinishedLocked();

    std::string host_;
    int port_ = 0;
    std::shared_ptr<MemoryStore> store_;
    ScopedFd listen_fd_;
    ScopedFd wake_read_;
    ScopedFd wake_write_;
    std::atomic<bool> stopping_{false};
    std::mutex stop_mutex_;  // serialises stop() callers
    std::thread accept_thread_;
    mutable std::mutex mutex_;  // guards connections_ and the fds inside them
    std::list<Connection> connections_;
};

}  // namespace weightsync::control
