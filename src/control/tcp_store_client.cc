#include "control/tcp_store_client.h"

#include "common/log.h"
#include "control/wire.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>

namespace weightsync::control {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr auto kMaxRetryPause = milliseconds(200);

std::vector<KeyValue> entriesOf(const json &reply) {
    check(reply.contains("entries"), Errc::kProtocol, "store reply without 'entries'");
    return wire::entriesFromJson(reply.at("entries"));
}

constexpr auto kMinKeepAlivePeriod = milliseconds(20);

/// A will on a connection of its own, kept alive by a thread of its own.
class TcpLastWill : public LastWill {
  public:
    TcpLastWill(const std::string &host, int port, const std::string &key, const std::string &value,
                milliseconds ttl, std::shared_ptr<const JobSecret> secret)
        : client_(host, port, std::chrono::seconds(10), std::chrono::seconds(10),
                  std::move(secret)),
          period_(std::max(ttl / 4, kMinKeepAlivePeriod)) {
        client_.bindWill(key, value, ttl);
        thread_ = std::thread([this] { run(); });
    }
    ~TcpLastWill() override {
        stopKeepAlives();
        // The connection closes with the client: unless withdrawn, the will is executed.
    }
    void withdraw() override {
        stopKeepAlives();
        if (!held_.load()) return;
        try {
            client_.releaseWill();
        } catch (const Error &) {
            // The coordinator may be gone: then nobody is left to tell.
        }
    }
    TcpLastWill(const TcpLastWill &) = delete;
    TcpLastWill &operator=(const TcpLastWill &) = delete;

    [[nodiscard]] bool held() const override { return held_.load(); }

  private:
    void stopKeepAlives() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    void run() {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, period_, [this] { return stop_; })) {
            lock.unlock();
            try {
                client_.keepAlive();
            } catch (const Error &e) {
                logger("control")->warn("liveness connection to the coordinator lost: {}",
                                        e.what());
                held_.store(false);
                return;
            }
            lock.lock();
        }
    }

    TcpStoreClient client_;
    milliseconds period_;
    std::atomic<bool> held_{true};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace

TcpStoreClient::TcpStoreClient(std::string host, int port, milliseconds connect_timeout,
                               milliseconds reply_margin, std::shared_ptr<const JobSecret> secret)
    : host_(std::move(host)), port_(port), reply_margin_(reply_margin), secret_(std::move(secret)) {
    check(port > 0 && port <= 65535, Errc::kInvalidArgument, "coordinator port {} out of range",
          port);
    const auto deadline = deadlineAfter(connect_timeout);
    auto pause = milliseconds(10);
    std::string error;
    int attempts = 0;
    while (true) {
        ++attempts;
        fd_ = connectTcp(host_, port_, deadline, error);
        if (fd_.valid()) break;
        const auto now = Clock::now();
        if (now >= deadline) {
            fail(Errc::kPeerLost,
                 "could not connect to coordinator at {}:{} within {} ms ({} attempts; last "
                 "error: {})",
                 host_, port_, connect_timeout.count(), attempts, error);
        }
        std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
        pause = std::min(pause * 2, kMaxRetryPause);
    }
    // Handshake: proves the peer speaks this protocol before anyone relies on it.
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    const json reply = call({{"op", "hello"}, {"version", wire::kProtocolVersion}},
                            std::max(left, milliseconds(0)));
    const auto version_it = reply.find("version");
    const int64_t version = version_it != reply.end() && version_it->is_number_integer()
                                ? version_it->get<int64_t>()
                                : 0;
    check(version == wire::kProtocolVersion, Errc::kProtocol,
          "coordinator at {}:{} speaks store protocol {}, expected {}", host_, port_, version,
          wire::kProtocolVersion);
    // A coordinator that authenticates requests names this connection's nonce.
    if (const auto nonce = reply.find("nonce"); nonce != reply.end() && nonce->is_string()) {
        nonce_ = nonce->get<std::string>();
    }
    logger("control")->debug("connected to coordinator at {}:{} after {} attempt(s)", host_, port_,
                             attempts);
}

void TcpStoreClient::markLost(const std::string &why) {
    lost_reason_ = why;
    fd_.reset();
    fail(Errc::kPeerLost, "coordinator at {}:{} disappeared ({})", host_, port_, lost_reason_);
}

json TcpStoreClient::call(json request, milliseconds call_timeout) {
    std::lock_guard lock(mutex_);
    if (!lost_reason_.empty()) {
        fail(Errc::kPeerLost, "coordinator at {}:{} disappeared ({})", host_, port_, lost_reason_);
    }
    const uint64_t id = next_id_++;
    request["id"] = id;
    const std::string op = request.at("op").get<std::string>();
    if (secret_ && op != "hello") {
        // docs/security.md: the MAC covers the connection's nonce and the request with its
        // counter, so a request is accepted once, on this connection only.
        request["seq"] = ++seq_;
        request["mac"] = toHex(secret_->mac(requestMacInput(nonce_, wire::dump(request))));
    }
    const std::string payload = wire::dump(request);  // kInvalidArgument before touching the fd
    check(payload.size() <= kMaxFrameBytes, Errc::kInvalidArgument,
          "store request '{}' of {} bytes exceeds the {} byte frame limit", op, payload.size(),
          kMaxFrameBytes);
    auto deadline = deadlineAfter(std::max(call_timeout, milliseconds(0)));
    if (deadline != kNoDeadline) deadline = std::min(deadline, kNoDeadline - reply_margin_);
    if (deadline != kNoDeadline) deadline += reply_margin_;
    json reply;
    try {
        sendFrame(fd_.get(), payload, deadline);
        reply = wire::parse(recvFrame(fd_.get(), deadline));
    } catch (const Error &e) {
        if (e.code() == Errc::kTimeout) {
            markLost(fmt::format("no reply to '{}' within its timeout of {} ms + {} ms margin", op,
                                 call_timeout.count(), reply_margin_.count()));
        }
        markLost(fmt::format("during '{}': {}", op, wire::bareMessage(e)));
    }
    const wire::ReplyStatus status = wire::replyStatus(reply, id);
    if (status.connection_lost) markLost(fmt::format("during '{}': {}", op, status.message));
    if (!status.ok) throw Error(status.code, status.message);
    return reply;
}

void TcpStoreClient::set(const std::string &key, const std::string &value) {
    call({{"op", "set"}, {"key", key}, {"value", wire::base64Encode(value)}}, milliseconds(0));
}

std::optional<std::string> TcpStoreClient::get(const std::string &key) {
    const json reply = call({{"op", "get"}, {"key", key}}, milliseconds(0));
    if (!wire::field<bool>(reply, "found")) return std::nullopt;
    return wire::base64Decode(wire::field<std::string>(reply, "value"));
}

std::string TcpStoreClient::wait(const std::string &key, milliseconds timeout) {
    const json reply =
        call({{"op", "wait"}, {"key", key}, {"timeout_ms", timeout.count()}}, timeout);
    return wire::base64Decode(wire::field<std::string>(reply, "value"));
}

bool TcpStoreClient::compareSet(const std::string &key, const std::optional<std::string> &expected,
                                const std::string &desired) {
    json request = {{"op", "compare_set"},
                    {"key", key},
                    {"expected", nullptr},
                    {"desired", wire::base64Encode(desired)}};
    if (expected) request["expected"] = wire::base64Encode(*expected);
    return wire::field<bool>(call(std::move(request), milliseconds(0)), "swapped");
}

int64_t TcpStoreClient::add(const std::string &key, int64_t delta) {
    const json reply = call({{"op", "add"}, {"key", key}, {"delta", delta}}, milliseconds(0));
    return wire::field<int64_t>(reply, "value");
}

std::vector<KeyValue> TcpStoreClient::list(const std::string &prefix) {
    return entriesOf(call({{"op", "list"}, {"prefix", prefix}}, milliseconds(0)));
}

std::vector<KeyValue> TcpStoreClient::watch(const std::string &prefix, uint64_t after_revision,
                                            milliseconds timeout) {
    return entriesOf(call({{"op", "watch"},
                           {"prefix", prefix},
                           {"after_revision", after_revision},
                           {"timeout_ms", timeout.count()}},
                          timeout));
}

void TcpStoreClient::erase(const std::string &key) {
    call({{"op", "erase"}, {"key", key}}, milliseconds(0));
}

size_t TcpStoreClient::erasePrefix(const std::string &prefix) {
    return call({{"op", "erase_prefix"}, {"prefix", prefix}}, milliseconds(0))
        .at("erased")
        .get<size_t>();
}

std::unique_ptr<LastWill> TcpStoreClient::lastWill(const std::string &key, const std::string &value,
                                                   milliseconds ttl) {
    check(ttl.count() > 0, Errc::kInvalidArgument, "a last will needs a positive ttl, got {} ms",
          ttl.count());
    return std::make_unique<TcpLastWill>(host_, port_, key, value, ttl, secret_);
}

void TcpStoreClient::bindWill(const std::string &key, const std::string &value, milliseconds ttl) {
    call({{"op", "will"},
          {"key", key},
          {"value", wire::base64Encode(value)},
          {"ttl_ms", ttl.count()}},
         milliseconds(0));
}

void TcpStoreClient::keepAlive() {
    call({{"op", "keep_alive"}}, milliseconds(0));
}

void TcpStoreClient::releaseWill() {
    call({{"op", "release_will"}}, milliseconds(0));
}

}  // namespace weightsync::control
