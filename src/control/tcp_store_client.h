#pragma once
// Store over one TCP connection to a TcpStoreServer (the coordinator). Thread-safe: one request
// is in flight at a time (a mutex spans request and reply), so give each agent its own client
// when it blocks in wait/watch.
//
// Failure model: server errors come back as weightsync::Error with the server's Errc. When the
// server disappears (EOF, reset, broken pipe) or stops answering, the call and every later call
// throw Errc::kPeerLost ("coordinator at host:port disappeared ..."). No call blocks longer than
// its own timeout plus reply_margin; SIGPIPE is never raised.

#include "control/auth.h"
#include "control/socket.h"
#include "control/store.h"

#include <nlohmann/json_fwd.hpp>

#include <mutex>

namespace weightsync::control {

class TcpStoreClient : public Store {
  public:
    /// Connects to host:port, retrying (the coordinator may start a moment later) until
    /// connect_timeout has passed; then throws Errc::kPeerLost naming the address and the last
    /// error. reply_margin bounds how long past a call's own timeout a reply may take before
    /// the coordinator is declared lost (non-blocking calls get reply_margin alone).
    /// secret: the job secret; every request then carries its MAC (docs/security.md).
    TcpStoreClient(std::string host, int port, std::chrono::milliseconds connect_timeout,
                   std::chrono::milliseconds reply_margin = std::chrono::seconds(10),
                   std::shared_ptr<const JobSecret> secret = nullptr);
    ~TcpStoreClient() override = default;
    TcpStoreClient(const TcpStoreClient &) = delete;
    TcpStoreClient &operator=(const TcpStoreClient &) = delete;

    void set(const std::string &key, const std::string &value) override;
    std::optional<std::string> get(const std::string &key) override;
    std::string wait(const std::string &key, std::chrono::milliseconds timeout) override;
    bool compareSet(const std::string &key, const std::optional<std::string> &expected,
                    const std::string &desired) override;
    int64_t add(const std::string &key, int64_t delta) override;
    std::vector<KeyValue> list(const std::string &prefix) override;
    std::vector<KeyValue> watch(const std::string &prefix, uint64_t after_revision,
                                std::chrono::milliseconds timeout) override;
    void erase(const std::string &key) override;
    size_t erasePrefix(const std::string &prefix) override;
    /// Opens a connection of its own that carries the will and a keep-alive every ttl/4 from a
    /// thread of its own; the coordinator executes the will when that connection closes or falls
    /// silent for ttl.
    std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                       std::chrono::milliseconds ttl) override;

    /// Connection-scoped liveness requests (what lastWill() sends on its own connection): bind
    /// a will to this connection, keep it alive, withdraw it.
    void bindWill(const std::string &key, const std::string &value, std::chrono::milliseconds ttl);
    void keepAlive();
    void releaseWill();

    [[nodiscard]] const std::string &host() const { return host_; }
    [[nodiscard]] int port() const { return port_; }

  private:
    /// Sends request (id added), waits for the reply until now + call_timeout + reply_margin_,
    /// throws the server's error or kPeerLost; returns the reply object.
    nlohmann::json call(nlohmann::json request, std::chrono::milliseconds call_timeout);
    [[noreturn]] void markLost(const std::string &why);

    std::string host_;
    int port_;
    std::chrono::milliseconds reply_margin_;
    std::mutex mutex_;
    ScopedFd fd_;
    std::string lost_reason_;  // non-empty once the connection is unusable
    uint64_t next_id_ = 1;
    std::shared_ptr<const JobSecret> secret_;
    std::string nonce_;  // the coordinator's, for this connection
    uint64_t seq_ = 0;   // the last request counter sent
};

}  // namespace weightsync::control
