#include "control/etcd/etcd_store.h"

#include "common/base64.h"
#include "common/error.h"
#include "common/json.h"
#include "control/etcd/etcd_json.h"
#include "control/etcd/etcd_will.h"
#include "control/etcd/http_client.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <thread>

namespace weightsync::control::etcd {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kScheme = "etcd://";

bool validPort(std::string_view text) {
    int port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    return ec == std::errc() && end == text.data() + text.size() && port >= 1 && port <= 65535;
}

milliseconds remaining(Clock::time_point deadline) {
    return std::max(milliseconds(0),
                    std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

}  // namespace

bool isEtcdAddress(const std::string &address) {
    return address.rfind(kScheme, 0) == 0;
}

EtcdOptions parseEtcdAddress(const std::string &address) {
    check(isEtcdAddress(address), Errc::kInvalidArgument,
          "'{}' is not an etcd address (etcd://host:port[,host:port...][/root])", address);
    std::string rest = address.substr(kScheme.size());
    EtcdOptions options;
    if (const size_t slash = rest.find('/'); slash != std::string::npos) {
        options.root = rest.substr(slash + 1);
        rest.resize(slash);
        check(!options.root.empty() && options.root.back() != '/', Errc::kInvalidArgument,
              "'{}': the root after '/' must be non-empty and not end with '/'", address);
    }
    size_t start = 0;
    while (start <= rest.size()) {
        const size_t comma = std::min(rest.find(',', start), rest.size());
        const std::string endpoint = rest.substr(start, comma - start);
        const size_t colon = endpoint.rfind(':');
        check(colon != std::string::npos && colon > 0 &&
                  validPort(std::string_view(endpoint).substr(colon + 1)),
              Errc::kInvalidArgument, "'{}': endpoint '{}' is not host:port (port 1-65535)",
              address, endpoint);
        options.endpoints.push_back(endpoint);
        start = comma + 1;
    }
    return options;
}

/// A pooled HttpClient: taken from the idle pool (or created), given back when destroyed.
class EtcdStore::Connection {
  public:
    Connection(EtcdStore &store, std::unique_ptr<HttpClient> client)
        : store_(store), client_(std::move(client)) {}
    ~Connection() {
        std::lock_guard lock(store_.mutex_);
        store_.idle_.push_back(std::move(client_));
    }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;
    HttpClient *operator->() const { return client_.get(); }

  private:
    EtcdStore &store_;
    std::unique_ptr<HttpClient> client_;
};

EtcdStore::Connection EtcdStore::connection() {
    std::unique_ptr<HttpClient> client;
    {
        std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            client = std::move(idle_.back());
            idle_.pop_back();
        }
    }
    if (!client) client = std::make_unique<HttpClient>(options_.endpoints);
    return {*this, std::move(client)};
}

EtcdStore::EtcdStore(EtcdOptions options)
    : options_(std::move(options)), data_(options_.root + "/kv/") {
    check(!options_.endpoints.empty(), Errc::kInvalidArgument, "etcd store: no endpoint");
    // First contact: etcd may come up a moment after us.
    const auto deadline = Clock::now() + options_.connect_timeout;
    milliseconds backoff(10);
    for (int attempt = 1;; ++attempt) {
        try {
            (void)call("/v3/maintenance/status", json::object());
            break;
        } catch (const Error &e) {
            if (e.code() != Errc::kPeerLost || Clock::now() + backoff >= deadline) {
                fail(Errc::kPeerLost, "could not reach etcd at {} within {} ms ({} attempts): {}",
                     fmt::join(options_.endpoints, ","), options_.connect_timeout.count(), attempt,
                     e.what());
            }
        }
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, milliseconds(200));
    }
    if (options_.execute_wills) executor_ = std::make_unique<WillExecutor>(options_);
}

EtcdStore::~EtcdStore() = default;

json EtcdStore::call(const std::string &path, const json &request) {
    const HttpReply reply = connection()->post(path, request.dump(), options_.request_timeout);
    return parseReply(reply.status, reply.body, path);
}

std::pair<std::vector<KeyValue>, uint64_t> EtcdStore::range(const std::string &key,
                                                            const std::string &range_end,
                                                            uint64_t after) {
    json request = {{"key", encodeBase64(key)}};
    if (!range_end.empty()) request["range_end"] = encodeBase64(range_end);
    if (after > 0) {
        const auto max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - 1);
        request["min_mod_revision"] = std::to_string(std::min(after, max) + 1);
    }
    const json reply = call("/v3/kv/range", request);
    std::vector<KeyValue> out;
    if (const auto kvs = reply.find("kvs"); kvs != reply.end()) {
        check(kvs->is_array(), Errc::kProtocol, "etcd range reply: kvs is not an array");
        for (const json &kv : *kvs) out.push_back(keyValue(kv, data_.size()));
    }
    std::sort(out.begin(), out.end(),
              [](const KeyValue &a, const KeyValue &b) { return a.key < b.key; });
    return {std::move(out), headerRevision(reply)};
}

std::vector<KeyValue> EtcdStore::await(const std::string &key, const std::string &range_end,
                                       uint64_t after, Clock::time_point deadline) {
    // A watch from "now" is synced in etcd: its events come at once (a watch from an older
    // revision is caught up by a background loop every 100 ms). So: open it, and once etcd
    // confirms it, read what exists; later puts arrive on the stream. Nothing falls in between.
    json create = {{"key", encodeBase64(key)}};
    if (!range_end.empty()) create["range_end"] = encodeBase64(range_end);
    const std::string body = json{{"create_request", create}}.dump();
    std::vector<KeyValue> found;
    while (found.empty() && Clock::now() < deadline) {
        // The stream ends with entries found, at the deadline, or if etcd ends it (then again).
        (void)connection()->stream(
            "/v3/watch", body, remaining(deadline), [&](const std::string &line) {
                const json message = parseJson(line, "etcd watch message");
                check(!message.contains("error"), Errc::kPeerLost, "etcd watch failed: {}", line);
                const json result = message.value("result", json::object());
                check(!result.value("canceled", false), Errc::kPeerLost,
                      "etcd cancelled the watch on '{}': {}", key,
                      result.value("cancel_reason", std::string("compacted")));
                bool changed = result.value("created", false);
                for (const json &event : result.value("events", json::array())) {
                    changed = changed || event.value("type", std::string("PUT")) == "PUT";
                }
                if (changed) found = range(key, range_end, after).first;
                return found.empty();
            });
    }
    return found;
}

void EtcdStore::set(const std::string &key, const std::string &value) {
    (void)call("/v3/kv/put", {{"key", encodeBase64(full(key))}, {"value", encodeBase64(value)}});
}

std::optional<std::string> EtcdStore::get(const std::string &key) {
    auto [entries, revision] = range(full(key), "");
    if (entries.empty()) return std::nullopt;
    return std::move(entries.front().value);
}

std::string EtcdStore::wait(const std::string &key, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto entries = range(full(key), "").first;
    if (entries.empty() && timeout.count() > 0) entries = await(full(key), "", 0, deadline);
    if (!entries.empty()) return std::move(entries.front().value);
    fail(Errc::kTimeout, "wait for key '{}' timed out after {} ms", key, timeout.count());
}

namespace {

json compareValue(const std::string &key, const std::optional<std::string> &expected) {
    if (!expected) {
        return {{"key", encodeBase64(key)},
                {"target", "CREATE"},
                {"result", "EQUAL"},
                {"create_revision", "0"}};
    }
    return {{"key", encodeBase64(key)},
            {"target", "VALUE"},
            {"result", "EQUAL"},
            {"value", encodeBase64(*expected)}};
}

json putOp(const std::string &key, const std::string &value) {
    return {{"request_put", {{"key", encodeBase64(key)}, {"value", encodeBase64(value)}}}};
}

}  // namespace

bool EtcdStore::compareSet(const std::string &key, const std::optional<std::string> &expected,
                           const std::string &desired) {
    const json reply =
        call("/v3/kv/txn", {{"compare", json::array({compareValue(full(key), expected)})},
                            {"success", json::array({putOp(full(key), desired)})}});
    return reply.value("succeeded", false);
}

int64_t EtcdStore::add(const std::string &key, int64_t delta) {
    // Optimistic: read, then write iff nobody wrote in between (the key's mod_revision).
    for (;;) {
        auto [entries, revision] = range(full(key), "");
        int64_t current = 0;
        json compare;
        if (entries.empty()) {
            compare = compareValue(full(key), std::nullopt);
        } else {
            const std::string &text = entries.front().value;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), current);
            check(ec == std::errc() && end == text.data() + text.size(), Errc::kInvalidArgument,
                  "add on key '{}': current value '{}' is not an integer", key, text);
            compare = {{"key", encodeBase64(full(key))},
                       {"target", "MOD"},
                       {"result", "EQUAL"},
                       {"mod_revision", std::to_string(entries.front().revision)}};
        }
        int64_t result = 0;
        check(!__builtin_add_overflow(current, delta, &result), Errc::kInvalidArgument,
              "add on key '{}' overflows ({} + {})", key, current, delta);
        const json reply = call(
            "/v3/kv/txn", {{"compare", json::array({compare})},
                           {"success", json::array({putOp(full(key), std::to_string(result))})}});
        if (reply.value("succeeded", false)) return result;
    }
}

std::vector<KeyValue> EtcdStore::list(const std::string &prefix) {
    return range(full(prefix), prefixEnd(full(prefix))).first;
}

std::vector<KeyValue> EtcdStore::watch(const std::string &prefix, uint64_t after_revision,
                                       milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::string key = full(prefix);
    const std::string end = prefixEnd(key);
    // What exists now, written after the revision (erased keys are gone: no tombstones); else
    // what a watch stream brings.
    auto entries = range(key, end, after_revision).first;
    if (entries.empty() && timeout.count() > 0) entries = await(key, end, after_revision, deadline);
    if (!entries.empty()) return entries;
    fail(Errc::kTimeout, "watch on prefix '{}' after revision {} timed out after {} ms", prefix,
         after_revision, timeout.count());
}

void EtcdStore::erase(const std::string &key) {
    (void)call("/v3/kv/deleterange", {{"key", encodeBase64(full(key))}});
}

size_t EtcdStore::erasePrefix(const std::string &prefix) {
    const json reply =
        call("/v3/kv/deleterange", {{"key", encodeBase64(full(prefix))},
                                    {"range_end", encodeBase64(prefixEnd(full(prefix)))}});
    return static_cast<size_t>(intField(reply, "deleted"));
}

std::unique_ptr<LastWill> EtcdStore::lastWill(const std::string &key, const std::string &value,
                                              milliseconds ttl) {
    check(ttl.count() > 0, Errc::kInvalidArgument, "last will '{}': ttl must be positive", key);
    return std::make_unique<EtcdLastWill>(options_, full(key), value, ttl);
}

}  // namespace weightsync::control::etcd
