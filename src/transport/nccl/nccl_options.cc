#include "transport/nccl/nccl_backend.h"

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>

namespace weightsync::transport {
namespace {

int64_t integer(const nlohmann::json &json, const std::string &key, int64_t lo, int64_t hi) {
    const auto &field = json.at(key);
    const bool ok =
        field.is_number_integer() && field.get<int64_t>() >= lo && field.get<int64_t>() <= hi;
    check(ok, Errc::kInvalidArgument, "nccl option '{}' must be an integer in [{}, {}], got {}",
          key, lo, hi, field.dump());
    return field.get<int64_t>();
}

}  // namespace

NcclOptions NcclOptions::fromJson(const nlohmann::json &json) {
    NcclOptions options;
    if (json.is_null()) return options;
    check(json.is_object(), Errc::kInvalidArgument, "nccl options must be a JSON object, got {}",
          json.type_name());
    static const std::set<std::string> kKnown = {"device", "post_timeout_ms"};
    for (const auto &[key, _] : json.items()) {
        check(kKnown.contains(key), Errc::kInvalidArgument,
              "unknown nccl option '{}' (known: device, post_timeout_ms)", key);
    }
    if (json.contains("device"))
        options.device = static_cast<int>(integer(json, "device", -1, 1023));
    if (json.contains("post_timeout_ms")) {
        options.post_timeout =
            std::chrono::milliseconds(integer(json, "post_timeout_ms", 1, int64_t{86'400'000}));
    }
    return options;
}

}  // namespace weightsync::transport
