#include "control/etcd/http_client.h"

#include "common/error.h"

#include <curl/curl.h>

#include <fmt/format.h>
#include <chrono>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <mutex>

namespace weightsync::control::etcd {

namespace {

void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] {
        check(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK, Errc::kInternal,
              "curl_global_init failed");
    });
}

/// Errors that mean "this endpoint cannot be reached" (nothing was sent): the next endpoint
/// may be tried without applying a request twice.
bool unreachable(CURLcode code) {
    return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST;
}

struct Sink {
    CURL *curl = nullptr;
    std::string body;     // the whole reply (post) or the error body (stream)
    std::string pending;  // stream: bytes of the line not finished yet
    const HttpClient::LineHandler *on_line = nullptr;
    bool stopped = false;  // the handler ended the stream
    std::string handler_error;
};

size_t onData(char *data, size_t size, size_t count, void *user) {
    auto *sink = static_cast<Sink *>(user);
    const size_t bytes = size * count;
    if (sink->on_line == nullptr) {
        sink->body.append(data, bytes);
        return bytes;
    }
    long status = 0;  // NOLINT(google-runtime-int)
    curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        sink->body.append(data, bytes);
        return bytes;
    }
    sink->pending.append(data, bytes);
    size_t start = 0;
    for (size_t nl = sink->pending.find('\n'); nl != std::string::npos;
         nl = sink->pending.find('\n', start)) {
        const std::string line = sink->pending.substr(start, nl - start);
        start = nl + 1;
        if (line.empty()) continue;
        try {
            if (!(*sink->on_line)(line)) {
                sink->stopped = true;
                return 0;  // ends the transfer (CURLE_WRITE_ERROR)
            }
        } catch (const std::exception &e) {
            sink->handler_error = e.what();
            return 0;
        }
    }
    sink->pending.erase(0, start);
    return bytes;
}

}  // namespace

struct HttpClient::Handle {
    Handle() {
        globalInit();
        curl = curl_easy_init();
        check(curl != nullptr, Errc::kInternal, "curl_easy_init failed");
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    }
    ~Handle() {
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    CURL *curl = nullptr;
    curl_slist *headers = nullptr;
    std::atomic<int> fd{-1};  // the socket of the connection in use (for cancel())
    std::atomic<bool> cancelled{false};
};

namespace {

curl_socket_t openSocket(void *user, curlsocktype /*purpose*/, curl_sockaddr *address) {
    auto *handle = static_cast<HttpClient::Handle *>(user);
    if (handle->cancelled) return CURL_SOCKET_BAD;
    const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    handle->fd = fd;
    return fd;
}

int closeSocket(void *user, curl_socket_t fd) {
    auto *handle = static_cast<HttpClient::Handle *>(user);
    int expected = fd;
    handle->fd.compare_exchange_strong(expected, -1);
    return ::close(fd);
}

}  // namespace

void HttpClient::cancel() {
    handle_->cancelled = true;
    const int fd = handle_->fd.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

HttpClient::HttpClient(std::vector<std::string> endpoints)
    : endpoints_(std::move(endpoints)), handle_(std::make_unique<Handle>()) {
    check(!endpoints_.empty(), Errc::kInvalidArgument, "etcd: no endpoint given");
}

HttpClient::~HttpClient() = default;

std::string HttpClient::endpointList() const {
    return fmt::format("{}", fmt::join(endpoints_, ","));
}

namespace {

struct Attempt {
    CURLcode code = CURLE_OK;
    long status = 0;  // NOLINT(google-runtime-int)
    std::string error;
};

Attempt perform(HttpClient::Handle &handle, const std::string &url, const std::string &body,
                std::chrono::milliseconds timeout, Sink &sink) {
    CURL *curl = handle.curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, &openSocket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &handle);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETFUNCTION, &closeSocket);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETDATA, &handle);
    char error[CURL_ERROR_SIZE] = {};
    sink.curl = curl;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, handle.headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &onData);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // etcd is addressed directly
    // CURLOPT_TIMEOUT_MS = 0 would mean "no timeout": every call is bounded.
    const long ms = std::max<long>(1, static_cast<long>(timeout.count()));  // NOLINT
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(ms, 5000));  // NOLINT
    Attempt attempt;
    attempt.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &attempt.status);
    attempt.error = error[0] != '\0' ? error : curl_easy_strerror(attempt.code);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    return attempt;
}

}  // namespace

HttpReply HttpClient::post(const std::string &path, const std::string &body,
                           std::chrono::milliseconds timeout) {
    std::string last_error;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
        const size_t index = (current_ + i) % endpoints_.size();
        Sink sink;
        const Attempt a =
            perform(*handle_, "http://" + endpoints_[index] + path, body, timeout, sink);
        if (a.code == CURLE_OK) {
            current_ = index;
            return HttpReply{a.status, std::move(sink.body)};
        }
        last_error = fmt::format("{}: {}", endpoints_[index], a.error);
        if (!unreachable(a.code)) break;
    }
    fail(Errc::kPeerLost, "etcd at {} did not answer {} ({})", endpointList(), path, last_error);
}

bool HttpClient::stream(const std::string &path, const std::string &body,
                        std::chrono::milliseconds timeout, const LineHandler &on_line) {
    std::string last_error;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
        const size_t index = (current_ + i) % endpoints_.size();
        if (handle_->cancelled) return false;
        Sink sink;
        sink.on_line = &on_line;
        const auto start = std::chrono::steady_clock::now();
        const Attempt a =
            perform(*handle_, "http://" + endpoints_[index] + path, body, timeout, sink);
        // The stream's own time ran out (also before etcd's first byte, when little was left):
        // nothing arrived in time, which is not a lost etcd.
        const bool out_of_time = std::chrono::steady_clock::now() - start >= timeout;
        if (handle_->cancelled) return false;
        if (!sink.handler_error.empty()) {
            throw Error(Errc::kProtocol, fmt::format("etcd {}: {}", path, sink.handler_error));
        }
        if (a.status != 0 && a.status != 200) {
            fail(Errc::kProtocol, "etcd at {} answered {} with HTTP {}: {}", endpoints_[index],
                 path, a.status, sink.body);
        }
        if (sink.stopped) {
            current_ = index;
            return true;
        }
        if (a.code == CURLE_OPERATION_TIMEDOUT && (a.status == 200 || out_of_time)) return false;
        if (a.code == CURLE_OK) return false;  // the server ended the stream
        last_error = fmt::format("{}: {}", endpoints_[index], a.error);
        if (!unreachable(a.code)) break;
    }
    fail(Errc::kPeerLost, "etcd at {} did not answer {} ({})", endpointList(), path, last_error);
}

}  // namespace weightsync::control::etcd
