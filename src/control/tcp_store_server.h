#pragma once
// Serves a MemoryStore over TCP: length-prefixed JSON requests (docs/control-store.md), all
// connections on one event-loop thread. A wait or watch does not block that thread: it is
// parked and answered when the store changes or its deadline passes, so a client blocked in
// wait/watch never delays another client, and idle connections cost no thread.
//
// Hostile input is bounded by ServerLimits: connections over the cap are refused with an error
// frame; a frame announced over the size cap is refused before anything is allocated for it;
// buffers grow only with bytes that arrived; a frame must arrive whole within read_timeout of
// its first byte; a connection is served one request at a time (a parked wait is its only
// waiting call; nothing more is read from it meanwhile); wait/watch timeouts are clamped.
// Whatever a client sends, the server only ever drops that client's connection.
//
// stop() (and the destructor) closes the listener and every connection promptly; blocked
// clients then see EOF (Errc::kPeerLost).

#include "control/auth.h"
#include "control/memory_store.h"
#include "control/socket.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace weightsync::control {

struct ServerLimits {
    /// Open client connections; one more is answered with an error frame and closed.
    size_t max_connections = 1024;
    /// Largest request frame; a larger announced size drops the connection before any of it is
    /// buffered.
    uint32_t max_frame_bytes = kMaxFrameBytes;
    /// A frame must arrive whole within this of its first byte, or the connection is dropped.
    std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
    /// A reply must be taken by the client within this, or the connection is dropped.
    std::chrono::milliseconds send_timeout = std::chrono::seconds(30);
    /// wait/watch timeouts are clamped to this.
    std::chrono::milliseconds max_call_timeout = std::chrono::hours(1);
    /// When set, every request but hello must carry the MAC of this job secret with a counter
    /// above the last one of its connection; others are refused as unauthenticated and logged.
    std::shared_ptr<const JobSecret> job_secret;
};

class TcpStoreServer {
  public:
    /// Binds host:port (port 0 = ephemeral) and starts serving. A null store creates a fresh
    /// MemoryStore. Throws Errc::kIo when the address cannot be bound, kInvalidArgument for
    /// unusable limits.
    explicit TcpStoreServer(const std::string &host = "127.0.0.1", int port = 0,
                            std::shared_ptr<MemoryStore> store = nullptr,
                            const ServerLimits &limits = {});
    ~TcpStoreServer();
    TcpStoreServer(const TcpStoreServer &) = delete;
    TcpStoreServer &operator=(const TcpStoreServer &) = delete;

    [[nodiscard]] const std::string &host() const { return host_; }
    /// The port actually bound (the ephemeral one when constructed with port 0).
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] const std::shared_ptr<MemoryStore> &store() const { return store_; }
    [[nodiscard]] const ServerLimits &limits() const { return limits_; }
    /// Client connections currently open (refused ones are not counted).
    [[nodiscard]] size_t connectionCount() const { return open_connections_.load(); }

    /// Stops accepting, closes every connection and joins the thread. Idempotent.
    void stop();

  private:
    class Loop;

    std::string host_;
    int port_ = 0;
    std::shared_ptr<MemoryStore> store_;
    ServerLimits limits_;
    ScopedFd wake_write_;  // a byte wakes the loop: a store write, or stop()
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> open_connections_{0};
    uint64_t listener_id_ = 0;
    std::mutex stop_mutex_;  // serialises stop() callers
    std::unique_ptr<Loop> loop_;
    std::thread thread_;
};

}  // namespace weightsync::control
