#pragma once
// A small HTTP/1.1 client over libcurl for etcd's v3 JSON gateway: one request at a time per
// HttpClient (a reused easy handle, so its TCP connection is kept), either a plain POST with a
// JSON reply, or a streaming POST whose newline-delimited JSON messages are handed to a
// callback as they arrive (etcd's watch stream). Endpoints are tried in order; the client moves
// on to the next one when an endpoint cannot be reached.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::control::etcd {

struct HttpReply {
    long status = 0;  // NOLINT(google-runtime-int): libcurl's type for the status code
    std::string body;
};

class HttpClient {
  public:
    /// endpoints: "host:port" each (plain http).
    explicit HttpClient(std::vector<std::string> endpoints);
    ~HttpClient();
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    /// POSTs body (JSON) to path ("/v3/kv/put") and returns the whole reply. Throws
    /// Errc::kPeerLost when no endpoint answers within timeout.
    HttpReply post(const std::string &path, const std::string &body,
                   std::chrono::milliseconds timeout);

    /// Called with each complete line of a streamed reply; returns false to end the stream.
    using LineHandler = std::function<bool(const std::string &line)>;
    /// POSTs body to path and hands every line of the reply to on_line until it returns false
    /// (then returns true), the server ends the stream or timeout passes (returns false).
    /// Throws Errc::kPeerLost when no endpoint can be reached, kProtocol on an HTTP error.
    bool stream(const std::string &path, const std::string &body, std::chrono::milliseconds timeout,
                const LineHandler &on_line);

    /// Shuts the client down from another thread: a stream() in progress ends at once (its socket
    /// is shut down) and returns false, as does every later stream(). Thread-safe.
    void cancel();

    /// "host:port,host2:port" (for messages).
    [[nodiscard]] std::string endpointList() const;

    struct Handle;  // the libcurl easy handle and its socket (http_client.cc)

  private:
    std::vector<std::string> endpoints_;
    size_t current_ = 0;  // the endpoint that answered last
    std::unique_ptr<Handle> handle_;
};

}  // namespace weightsync::control::etcd
