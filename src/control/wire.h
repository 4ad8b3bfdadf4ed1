#pragma once
// JSON message helpers shared by TcpStoreServer and TcpStoreClient (see docs/control-store.md).
// Values travel base64-encoded because store values may be binary (agent metadata, addresses).

#include "common/error.h"
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
std::vector<KeyValue> entriesFromJson(const nlohmann::json &array);

/// Serialises a message; invalid UTF-8 in a key or prefix is rejected with kInvalidArgument.
std::string dump(const nlohmann::json &message);
/// Parses a message; throws kProtocol when it is not a JSON object.
nlohmann::json parse(const std::string &text);

}  // namespace weightsync::control::wire
