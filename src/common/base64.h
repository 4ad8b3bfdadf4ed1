#pragma once
// Standard base64 (RFC 4648, with padding) for carrying binary keys and addresses in JSON.

#include <string>
#include <string_view>

namespace weightsync {

std::string encodeBase64(std::string_view bytes);

/// Throws Error(kInvalidArgument) on characters outside the alphabet, a bad length/padding, or
/// non-zero padding bits (so every byte string has exactly one accepted encoding).
std::string decodeBase64(std::string_view text);

}  // namespace weightsync
