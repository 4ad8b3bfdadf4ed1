#pragma once
// Decoding JSON that another process or a file supplied. Every decoder of such input parses
// through parseJson, which refuses documents nested deeper than kMaxJsonDepth before nlohmann
// builds (and later copies or dumps, both recursive) the value, so no input can exhaust the
// stack. checkJsonDepth guards values that were parsed elsewhere before a decoder copies them.

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <limits>
#include <string_view>
#include <type_traits>

namespace weightsync {

/// Arrays and objects nested deeper than this are refused. weightsync's own documents nest at
/// most 5 levels (a job spec's expert maps, a memory record's descriptors).
inline constexpr int kMaxJsonDepth = 64;

/// Parses text as one JSON document. Throws Error(code) naming `what` when the text is not
/// valid JSON or nests arrays/objects deeper than max_depth (checked on the text, first).
nlohmann::json parseJson(std::string_view text, std::string_view what, Errc code = Errc::kProtocol,
                         int max_depth = kMaxJsonDepth);

/// Throws Error(code) naming `what` when value nests deeper than max_depth. Iterative.
void checkJsonDepth(const nlohmann::json &value, std::string_view what, Errc code = Errc::kProtocol,
                    int max_depth = kMaxJsonDepth);

/// Throws Error(code) naming `what` when value holds a floating-point number anywhere: for
/// documents of integers only, so that no float reaches nlohmann's integer conversions (undefined
/// behaviour for a value such as 1e300). Iterative.
void checkNoFloats(const nlohmann::json &value, std::string_view what, Errc code = Errc::kProtocol);

/// value as the integer type T. Throws Error(code) naming `what` when value is not a JSON
/// integer (a float such as 1.5 or 1e300 is refused, never truncated) or does not fit in T.
template <typename T>
T jsonInteger(const nlohmann::json &value, std::string_view what, Errc code = Errc::kProtocol) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    using Limits = std::numeric_limits<T>;
    if (value.is_number_unsigned()) {
        const auto v = value.get<uint64_t>();
        check(v <= static_cast<uint64_t>(Limits::max()), code, "{}: {} is out of range (max {})",
              what, v, Limits::max());
        return static_cast<T>(v);
    }
    check(value.is_number_integer(), code, "{}: expected an integer, got {} {}", what,
          value.type_name(), value.is_number() ? value.dump() : std::string());
    const auto v = value.get<int64_t>();
    if constexpr (Limits::is_signed) {
        check(v >= static_cast<int64_t>(Limits::min()) && v <= static_cast<int64_t>(Limits::max()),
              code, "{}: {} is out of range [{}, {}]", what, v, Limits::min(), Limits::max());
    } else {
        check(v >= 0 && static_cast<uint64_t>(v) <= static_cast<uint64_t>(Limits::max()), code,
              "{}: {} is out of range [0, {}]", what, v, Limits::max());
    }
    return static_cast<T>(v);
}

}  // namespace weightsync
