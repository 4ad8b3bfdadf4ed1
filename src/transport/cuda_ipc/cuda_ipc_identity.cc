#include "transport/cuda_ipc/cuda_ipc_identity.h"

#include "common/error.h"
#include "common/json.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstring>

namespace weightsync::transport::cuda_ipc {
namespace {

constexpr std::string_view kAddressMagic = "WSCUDAIPC1:";
constexpr std::array<char, 8> kKeyMagic = {'W', 'S', 'I', 'P', 'C', 'K', '0', '1'};
constexpr size_t kKeySize = kKeyMagic.size() + sizeof(cudaIpcMemHandle_t) + 3 * sizeof(uint64_t) +
                            sizeof(platform::DeviceUuid);

template <typename T>
void put(std::string &out, const T &value) {
    out.append(reinterpret_cast<const char *>(&value), sizeof value);
}

template <typename T>
void take(const std::string &in, size_t &at, T &value) {
    std::memcpy(&value, in.data() + at, sizeof value);
    at += sizeof value;
}

}  // namespace

std::string ProcessAddress::encode() const {
    const nlohmann::json json{{"host", host},
                              {"pid", pid},
                              {"device", device},
                              {"uuid", platform::uuidString(uuid)},
                              {"uuid_bytes", std::vector<int>(uuid.begin(), uuid.end())}};
    return std::string(kAddressMagic) + json.dump();
}

ProcessAddress ProcessAddress::decode(const std::string &blob, const std::string &peer) {
    check(blob.starts_with(kAddressMagic), Errc::kInvalidArgument,
          "cuda_ipc: the address of peer {} ({} bytes) is not a cuda_ipc address", peer,
          blob.size());
    try {
        const auto json = parseJson(std::string_view(blob).substr(kAddressMagic.size()), "address");
        ProcessAddress a;
        a.host = json.at("host").get<std::string>();
        // Checked integers: a float here was converted to int (undefined behaviour), and a uuid
        // byte of 300 was silently wrapped.
        a.pid = jsonInteger<int64_t>(json.at("pid"), "pid");
        a.device = jsonInteger<int>(json.at("device"), "device");
        const auto &bytes = json.at("uuid_bytes");
        check(bytes.is_array() && bytes.size() == a.uuid.size(), Errc::kInvalidArgument,
              "uuid of {} bytes", bytes.size());
        for (size_t i = 0; i < bytes.size(); ++i) {
            a.uuid[i] = jsonInteger<uint8_t>(bytes[i], "uuid byte");
        }
        return a;
    } catch (const std::exception &e) {
        fail(Errc::kInvalidArgument, "cuda_ipc: malformed address of peer {}: {}", peer, e.what());
    }
}

std::string IpcKey::pack() const {
    std::string out(kKeyMagic.begin(), kKeyMagic.end());
    out.reserve(kKeySize);
    put(out, handle);
    put(out, offset);
    put(out, base_size);
    put(out, pid);
    put(out, uuid);
    return out;
}

IpcKey IpcKey::unpack(const std::string &bytes, const std::string &peer) {
    check(bytes.size() == kKeySize &&
              std::memcmp(bytes.data(), kKeyMagic.data(), kKeyMagic.size()) == 0,
          Errc::kInvalidArgument,
          "cuda_ipc: the descriptor key from peer {} ({} bytes) is not a cuda_ipc key", peer,
          bytes.size());
    IpcKey key;
    size_t at = kKeyMagic.size();
    take(bytes, at, key.handle);
    take(bytes, at, key.offset);
    take(bytes, at, key.base_size);
    take(bytes, at, key.pid);
    take(bytes, at, key.uuid);
    return key;
}

std::string IpcKey::handleBytes() const {
    return {reinterpret_cast<const char *>(&handle), sizeof handle};
}

}  // namespace weightsync::transport::cuda_ipc
