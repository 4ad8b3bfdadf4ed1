#include "transport/ucx/ucx_backend.h"

#include <nlohmann/json.hpp>

#include <set>

namespace weightsync::transport {
namespace {

template <typename T>
T value(const nlohmann::json &json, const std::string &key) {
    try {
        return json.at(key).get<T>();
    } catch (const nlohmann::json::exception &e) {
        fail(Errc::kInvalidArgument, "ucx option '{}': {}", key, e.what());
    }
}

size_t positive(const nlohmann::json &json, const std::string &key) {
    const auto &field = json.at(key);
    const bool ok = field.is_number_unsigned()  ? field.get<uint64_t>() > 0
                    : field.is_number_integer() ? field.get<int64_t>() > 0
                                                : false;
    check(ok, Errc::kInvalidArgument, "ucx option '{}' must be a positive integer, got {}", key,
          field.dump());
    return field.get<size_t>();
}

}  // namespace

UcxOptions UcxOptions::fromJson(const nlohmann::json &json) {
    UcxOptions options;
    if (json.is_null()) return options;
    check(json.is_object(), Errc::kInvalidArgument, "ucx options must be a JSON object, got {}",
          json.type_name());
    static const std::set<std::string> kKnown = {
        "transports",  "max_inflight_bytes", "max_inflight_writes", "max_write_size", "wakeup",
        "direct_copy", "prefault_imports",   "post_timeout_ms",     "config"};
    for (const auto &[key, _] : json.items()) {
        check(kKnown.contains(key), Errc::kInvalidArgument, "unknown ucx option '{}'", key);
    }
    if (json.contains("transports")) options.transports = value<std::string>(json, "transports");
    if (json.contains("max_inflight_bytes")) {
        options.max_inflight_bytes = positive(json, "max_inflight_bytes");
    }
    if (json.contains("max_inflight_writes")) {
        options.max_inflight_writes = positive(json, "max_inflight_writes");
    }
    if (json.contains("max_write_size")) options.max_write_size = positive(json, "max_write_size");
    if (json.contains("wakeup")) options.wakeup = value<bool>(json, "wakeup");
    if (json.contains("direct_copy")) options.direct_copy = value<bool>(json, "direct_copy");
    if (json.contains("prefault_imports")) {
        options.prefault_imports = value<bool>(json, "prefault_imports");
    }
    if (json.contains("post_timeout_ms")) {
        options.post_timeout = std::chrono::milliseconds(positive(json, "post_timeout_ms"));
    }
    if (json.contains("config")) {
        options.config = value<std::map<std::string, std::string>>(json, "config");
        for (const auto &[key, _] : options.config) {
            check(!key.empty() && !key.starts_with("UCX_"), Errc::kInvalidArgument,
                  "ucx option 'config': key '{}' must be a UCX setting without the UCX_ prefix",
                  key);
        }
    }
    return options;
}

}  // namespace weightsync::transport
