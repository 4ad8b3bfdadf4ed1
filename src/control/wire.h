#pragma once
// JSON message helpers shared by TcpStoreServer and TcpStoreClient (see docs/control-store.md).
// Values travel base64-encoded because store values may be binary (agent metadata, addresses).

#include "common/error.h"
#include "common/json.h"
#include "control/store.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace weightsync::control::wire {

inline constexpr int kProtocolVersion = 1;

std::string base64Encode(std::string_view bytes);
/// Throws kProtocol on malformed input.
std::string base64Decode(std::string_view text);

/// Stable wire name of an error code ("timeout", "peer lost", ... = errcName).
std::string_view codeName(Errc code);
/// Inverse of codeName; unknown names map to kInternal.
Errc parseCode(std::string_view name);
/// Error::what() without the "<code name>: " prefix that the Error constructor adds.
std::string bareMessage(const Error &error);

nlohmann::json entriesToJson(const std::vector<KeyValue> &entries);
/// Throws kProtocol when array is not a list of well-formed entries.
std::vector<KeyValue> entriesFromJson(const nlohmann::json &array);

/// message[name] as T; throws kProtocol naming the field when it is missing or of another type.
template <typename T>
T field(const nlohmann::json &message, const char *name) {
    const auto it = message.find(name);
    check(it != message.end(), Errc::kProtocol, "store message without field '{}'", name);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        return jsonInteger<T>(*it, fmt::format("store message field '{}'", name));
    } else {
        try {
            return it->get<T>();
        } catch (const nlohmann::json::exception &e) {
            fail(Errc::kProtocol, "store message field '{}': {}", name, e.what());
        }
    }
}

/// What a reply says about the request with this id. Never throws.
struct ReplyStatus {
    bool ok = false;
    /// The connection is unusable: the reply answers another request, or the server dropped
    /// this connection (an error with a null id: refused, or a frame it could not use) or is
    /// shutting down. message says which.
    bool connection_lost = false;
    Errc code = Errc::kInternal;  // the server's error code when !ok
    std::string message;
};
ReplyStatus replyStatus(const nlohmann::json &reply, uint64_t id);

/// Serialises a message; invalid UTF-8 in a key or prefix is rejected with kInvalidArgument.
std::string dump(const nlohmann::json &message);
/// Parses a message (common/json.h: depth-limited); throws kProtocol when it is not valid JSON,
/// nests too deep or is not an object.
nlohmann::json parse(std::string_view text);

}  // namespace weightsync::control::wire
