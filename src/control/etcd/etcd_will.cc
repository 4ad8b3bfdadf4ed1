#include "control/etcd/etcd_will.h"

#include "common/base64.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "control/etcd/etcd_json.h"
#include "control/etcd/http_client.h"

namespace weightsync::control::etcd {

using nlohmann::json;
using std::chrono::milliseconds;

std::string willsPrefix(const std::string &root) {
    return root + "/wills/";
}
std::string willsDonePrefix(const std::string &root) {
    return root + "/wills-done/";
}

namespace {

json post(HttpClient &client, const std::string &path, const json &request, milliseconds timeout) {
    const HttpReply reply = client.post(path, request.dump(), timeout);
    return parseReply(reply.status, reply.body, path);
}

json put(const std::string &key, const std::string &value) {
    return {{"request_put", {{"key", encodeBase64(key)}, {"value", encodeBase64(value)}}}};
}

/// Settles will `lease` once for the whole cluster: creates its done marker iff absent, together
/// with `then`. The owner attaches the marker to the lease (lease != 0), so revoking the lease
/// removes it; an executor's marker (lease 0) stays. Returns whether this call won.
bool settleWill(HttpClient &client, const EtcdOptions &options, int64_t lease,
                const std::string &how, json then, bool attach) {
    const std::string done = willsDonePrefix(options.root) + std::to_string(lease);
    json marker = put(done, how);
    if (attach) marker["request_put"]["lease"] = std::to_string(lease);
    then.push_back(std::move(marker));
    const json compare = {{"key", encodeBase64(done)},
                          {"target", "CREATE"},
                          {"result", "EQUAL"},
                          {"create_revision", "0"}};
    const json reply = post(client, "/v3/kv/txn",
                            {{"compare", json::array({compare})}, {"success", std::move(then)}},
                            options.request_timeout);
    return reply.value("succeeded", false);
}

}  // namespace

EtcdLastWill::EtcdLastWill(const EtcdOptions &options, std::string key, std::string value,
                           milliseconds ttl)
    : options_(options),
      key_(std::move(key)),
      value_(std::move(value)),
      client_(std::make_unique<HttpClient>(options.endpoints)),
      keepalive_client_(std::make_unique<HttpClient>(options.endpoints)) {
    ttl_seconds_ = std::max<int64_t>(2, (ttl.count() + 999) / 1000);
    const json grant =
        post(*client_, "/v3/lease/grant", {{"TTL", ttl_seconds_}}, options_.request_timeout);
    lease_ = intField(grant, "ID");
    check(lease_ != 0, Errc::kProtocol, "etcd granted no lease for the will '{}'", key_);
    ttl_seconds_ = std::max(ttl_seconds_, intField(grant, "TTL"));
    const json record = {{"key", encodeBase64(key_)}, {"value", encodeBase64(value_)}};
    (void)post(*client_, "/v3/kv/put",
               {{"key", encodeBase64(willsPrefix(options_.root) + std::to_string(lease_))},
                {"value", encodeBase64(record.dump())},
                {"lease", std::to_string(lease_)}},
               options_.request_timeout);
    thread_ = std::thread([this] { keepAliveLoop(); });
}

void EtcdLastWill::keepAliveLoop() {
    const milliseconds interval(ttl_seconds_ * 1000 / 3);
    auto last_ok = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
        lock.unlock();
        try {
            const HttpReply reply = keepalive_client_->post(
                "/v3/lease/keepalive", json{{"ID", std::to_string(lease_)}}.dump(), interval);
            const json message = parseReply(reply.status, reply.body, "lease keep-alive");
            if (intField(message.value("result", json::object()), "TTL") <= 0) {
                held_ = false;  // the lease expired: etcd declared this process gone
                return;
            }
            last_ok = std::chrono::steady_clock::now();
        } catch (const Error &e) {
            if (std::chrono::steady_clock::now() - last_ok > std::chrono::seconds(ttl_seconds_)) {
                held_ = false;
                logger("etcd")->warn("will '{}': no keep-alive for {} s: {}", key_, ttl_seconds_,
                                     e.what());
                return;
            }
        }
        lock.lock();
    }
}

void EtcdLastWill::stopKeepAlive() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool EtcdLastWill::settle(const std::string &how, bool execute) {
    if (settled_) return false;
    settled_ = true;
    // The record goes in the same transaction as the marker: an executor that sees the record's
    // delete reads the marker at that revision and knows the will is settled.
    const std::string record = willsPrefix(options_.root) + std::to_string(lease_);
    json then = json::array();
    then.push_back({{"request_delete_range", {{"key", encodeBase64(record)}}}});
    if (execute) then.push_back(put(key_, value_));
    const bool won = settleWill(*client_, options_, lease_, how, std::move(then), true);
    // A lease etcd no longer has (it expired meanwhile) needs no revoking.
    const HttpReply reply = client_->post(
        "/v3/lease/revoke", json{{"ID", std::to_string(lease_)}}.dump(), options_.request_timeout);
    if (reply.status != 404) (void)parseReply(reply.status, reply.body, "/v3/lease/revoke");
    return won;
}

void EtcdLastWill::withdraw() {
    stopKeepAlive();
    try {
        (void)settle("withdrawn", false);
    } catch (const Error &e) {
        logger("etcd")->warn("withdrawing the will '{}': {}", key_, e.what());
    }
}

EtcdLastWill::~EtcdLastWill() {
    stopKeepAlive();
    try {
        (void)settle("executed by its owner", true);
    } catch (const Error &e) {
        // The lease expires on its own; another process's executor writes the will then.
        logger("etcd")->warn("executing the will '{}': {}", key_, e.what());
    }
}

WillExecutor::WillExecutor(const EtcdOptions &options)
    : options_(options),
      stream_(std::make_unique<HttpClient>(options.endpoints)),
      writer_(std::make_unique<HttpClient>(options.endpoints)) {
    thread_ = std::thread([this] { run(); });
}

WillExecutor::~WillExecutor() {
    stop_ = true;
    stream_->cancel();
    thread_.join();
}

void WillExecutor::execute(const std::string &record_key, const std::string &record,
                           uint64_t deleted_at) {
    const std::string id = record_key.substr(willsPrefix(options_.root).size());
    int64_t lease = 0;
    try {
        lease = std::stoll(id);
    } catch (const std::exception &) {
        return;  // not a will record of ours
    }
    // Settled by its owner in the transaction that deleted the record (withdrawn, or executed
    // on the way out)? Its marker exists at that revision, even if the lease took it since.
    const json settled = post(*writer_, "/v3/kv/range",
                              {{"key", encodeBase64(willsDonePrefix(options_.root) + id)},
                               {"revision", std::to_string(deleted_at)},
                               {"count_only", true}},
                              options_.request_timeout);
    if (intField(settled, "count") > 0) return;
    const json will = parseJson(record, "will record");
    const std::string key = bytesField(will, "key");
    const std::string value = bytesField(will, "value");
    if (settleWill(*writer_, options_, lease, "executed on lease expiry",
                   json::array({put(key, value)}), false)) {
        logger("etcd")->info("lease {} expired: wrote its will '{}'", lease, key);
    }
}

void WillExecutor::run() {
    const std::string prefix = willsPrefix(options_.root);
    const std::string body_key = encodeBase64(prefix);
    const std::string body_end = encodeBase64(prefixEnd(prefix));
    uint64_t next = 0;  // the revision to watch from (0: from now)
    while (!stop_) {
        try {
            if (next == 0) {
                const json reply = post(*writer_, "/v3/kv/range",
                                        {{"key", body_key}, {"range_end", body_end}, {"limit", 1}},
                                        options_.request_timeout);
                next = headerRevision(reply) + 1;
            }
            const json create = {{"key", body_key},
                                 {"range_end", body_end},
                                 {"start_revision", std::to_string(next)},
                                 {"prev_kv", true}};
            (void)stream_->stream(
                "/v3/watch", json{{"create_request", create}}.dump(), std::chrono::minutes(10),
                [&](const std::string &line) {
                    const json message = parseJson(line, "etcd watch message");
                    const json result = message.value("result", json::object());
                    if (result.value("canceled", false)) {
                        next = 0;  // compacted: from now on
                        return false;
                    }
                    for (const json &event : result.value("events", json::array())) {
                        const json kv = event.value("kv", json::object());
                        const auto at = static_cast<uint64_t>(intField(kv, "mod_revision"));
                        next = std::max(next, at + 1);
                        if (event.value("type", std::string("PUT")) != "DELETE") continue;
                        const auto prev = event.find("prev_kv");
                        if (prev == event.end()) continue;
                        execute(bytesField(*prev, "key"), bytesField(*prev, "value"), at);
                    }
                    return !stop_;
                });
        } catch (const Error &e) {
            if (stop_) break;
            logger("etcd")->warn("will executor: {}; retrying", e.what());
            std::this_thread::sleep_for(milliseconds(200));
        }
    }
}

}  // namespace weightsync::control::etcd
