#include "transport/cuda_ipc/cuda_ipc_backend.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>

namespace weightsync::transport {
namespace {

int64_t integer(const nlohmann::json &json, const std::string &key, int64_t lo, int64_t hi) {
    const auto &field = json.at(key);
    bool ok = false;
    int64_t value = 0;
    if (field.is_number_unsigned()) {
        const auto u = field.get<uint64_t>();
        ok = u <= static_cast<uint64_t>(hi);
        value = ok ? static_cast<int64_t>(u) : 0;
    } else if (field.is_number_integer()) {
        value = field.get<int64_t>();
        ok = value <= hi;
    }
    check(ok && value >= lo, Errc::kInvalidArgument,
          "cuda_ipc option '{}' must be an integer in [{}, {}], got {}", key, lo, hi, field.dump());
    return value;
}

}  // namespace

CudaIpcOptions CudaIpcOptions::fromJson(const nlohmann::json &json) {
    CudaIpcOptions options;
    if (json.is_null()) return options;
    check(json.is_object(), Errc::kInvalidArgument,
          "cuda_ipc options must be a JSON object, got {}", json.type_name());
    static const std::set<std::string> kKnown = {"streams", "chunk_bytes", "device"};
    for (const auto &[key, _] : json.items()) {
        check(kKnown.contains(key), Errc::kInvalidArgument, "unknown cuda_ipc option '{}'", key);
    }
    if (json.contains("streams"))
        options.streams = static_cast<int>(integer(json, "streams", 1, 64));
    if (json.contains("chunk_bytes")) {
        options.chunk_bytes = static_cast<size_t>(integer(json, "chunk_bytes", 1, INT64_MAX));
    }
    if (json.contains("device"))
        options.device = static_cast<int>(integer(json, "device", -1, 1023));
    return options;
}

}  // namespace weightsync::transport
