// RemoteDescriptor <-> JSON. The schema is versioned ("v"); the key blob travels as base64.

#include "common/base64.h"
#include "common/json.h"
#include "transport/transport.h"

#include <nlohmann/json.hpp>

namespace weightsync::transport {
namespace {

constexpr int kDescriptorVersion = 1;

std::string_view kindName(MemoryKind kind) {
    return kind == MemoryKind::kCuda ? "cuda" : "host";
}

MemoryKind parseKind(const std::string &name) {
    if (name == "host") return MemoryKind::kHost;
    if (name == "cuda") return MemoryKind::kCuda;
    fail(Errc::kInvalidArgument, "descriptor: unknown memory kind '{}' (expected host or cuda)",
         name);
}

template <typename T>
T field(const nlohmann::json &json, const char *name) {
    const auto it = json.find(name);
    check(it != json.end(), Errc::kInvalidArgument, "descriptor: missing field '{}'", name);
    if constexpr (std::is_integral_v<T>) {  // a float must not be converted (UB when too large)
        return jsonInteger<T>(*it, fmt::format("descriptor: field '{}'", name),
                              Errc::kInvalidArgument);
    } else {
        try {
            return it->get<T>();
        } catch (const nlohmann::json::exception &e) {
            fail(Errc::kInvalidArgument, "descriptor: field '{}' has the wrong type: {}", name,
                 e.what());
        }
    }
}

uint64_t unsignedField(const nlohmann::json &json, const char *name) {
    const auto it = json.find(name);
    check(it != json.end(), Errc::kInvalidArgument, "descriptor: missing field '{}'", name);
    const bool ok = it->is_number_unsigned() || (it->is_number_integer() && *it >= 0);
    check(ok, Errc::kInvalidArgument, "descriptor: field '{}' must be a non-negative integer",
          name);
    return it->get<uint64_t>();
}

}  // namespace

nlohmann::json RemoteDescriptor::toJson() const {
    return nlohmann::json{{"v", kDescriptorVersion},  {"backend", backend},
                          {"address", address},       {"length", length},
                          {"kind", kindName(kind)},   {"device", device},
                          {"generation", generation}, {"key", encodeBase64(key)}};
}

RemoteDescriptor RemoteDescriptor::fromJson(const nlohmann::json &json) {
    check(json.is_object(), Errc::kInvalidArgument, "descriptor: expected a JSON object, got {}",
          json.type_name());
    const int version = field<int>(json, "v");
    check(version == kDescriptorVersion, Errc::kMismatch,
          "descriptor: schema version {} is not supported (this build reads version {})", version,
          kDescriptorVersion);
    RemoteDescriptor d;
    d.backend = field<std::string>(json, "backend");
    check(!d.backend.empty(), Errc::kInvalidArgument, "descriptor: empty backend name");
    d.address = unsignedField(json, "address");
    d.length = unsignedField(json, "length");
    d.kind = parseKind(field<std::string>(json, "kind"));
    d.device = field<int>(json, "device");
    d.generation = unsignedField(json, "generation");
    d.key = decodeBase64(field<std::string>(json, "key"));
    check(d.length > 0, Errc::kInvalidArgument, "descriptor: zero-length region");
    check(d.address + d.length >= d.address, Errc::kInvalidArgument,
          "descriptor: region [{:#x}, +{}) wraps around the address space", d.address, d.length);
    if (d.kind == MemoryKind::kHost) {
        check(d.device == -1, Errc::kMismatch, "descriptor: host region with device {}", d.device);
    } else {
        check(d.device >= 0, Errc::kMismatch, "descriptor: cuda region with device {}", d.device);
    }
    return d;
}

}  // namespace weightsync::transport
