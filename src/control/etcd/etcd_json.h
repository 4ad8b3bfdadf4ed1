#pragma once
// The pieces of etcd's v3 JSON gateway encoding shared by the store and the wills: bytes are
// base64, 64-bit integers arrive as decimal strings, and fields at their default (0, false,
// empty) are left out of replies.

#include "control/store.h"

#include <nlohmann/json.hpp>

#include <string>

namespace weightsync::control::etcd {

/// The smallest key greater than every key starting with prefix (etcd's range_end); "\0" (all
/// keys) when no such key exists.
std::string prefixEnd(const std::string &prefix);

/// An int64 field of a reply (absent = 0). Throws kProtocol naming the field otherwise.
int64_t intField(const nlohmann::json &object, const char *name);

/// A bytes field of a reply, decoded (absent = "").
std::string bytesField(const nlohmann::json &object, const char *name);

/// An etcd mvccpb.KeyValue as a KeyValue, its key with the first strip bytes removed.
KeyValue keyValue(const nlohmann::json &kv, size_t strip);

/// The reply's header.revision.
uint64_t headerRevision(const nlohmann::json &reply);

/// Parses an HTTP reply of the gateway; a non-200 status or an {"error": ...} body becomes a
/// weightsync::Error (grpc InvalidArgument -> kInvalidArgument, Unavailable -> kPeerLost, other
/// -> kProtocol) naming what.
nlohmann::json parseReply(long status, const std::string &body,  // NOLINT(google-runtime-int)
                          const std::string &what);

}  // namespace weightsync::control::etcd
