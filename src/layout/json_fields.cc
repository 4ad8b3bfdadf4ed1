#include "layout/json_fields.h"

#include "common/error.h"
#include "common/json.h"
#include "layout/limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace weightsync::jsonfields {

using nlohmann::json;

json parse(std::string_view text, std::string_view what) {
    // The project's one depth-limited parser (common/json.h), with this layer's limit and code.
    return parseJson(text, what, Errc::kInvalidArgument, limits::kMaxJsonDepth);
}

Error inContext(const Error &e, std::string_view where) {
    std::string_view message = e.what();
    const std::string prefix = std::string(errcName(e.code())) + ": ";
    if (message.starts_with(prefix)) message.remove_prefix(prefix.size());
    return {e.code(), fmt::format("{}: {}", where, message)};
}

std::string brief(const json &value) {
    std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    constexpr size_t kMax = 60;
    if (text.size() > kMax) text = text.substr(0, kMax) + "...";
    return text;
}

int64_t integer(const json &value, std::string_view what, int64_t lo, int64_t hi) {
    if (value.is_number_unsigned()) {
        // nlohmann reads every non-negative integer as unsigned.
        const auto u = value.get<uint64_t>();
        check((lo <= 0 || u >= static_cast<uint64_t>(lo)) &&
                  (hi >= 0 && u <= static_cast<uint64_t>(hi)),
              Errc::kInvalidArgument, "{} must be an integer in [{}, {}], got {}", what, lo, hi, u);
        return static_cast<int64_t>(u);
    }
    check(value.is_number_integer(), Errc::kInvalidArgument,
          "{} must be an integer in [{}, {}], got {}", what, lo, hi, brief(value));
    const auto i = value.get<int64_t>();
    check(lo <= i && i <= hi, Errc::kInvalidArgument, "{} must be an integer in [{}, {}], got {}",
          what, lo, hi, i);
    return i;
}

uint64_t unsignedInteger(const json &value, std::string_view what) {
    if (value.is_number_unsigned()) return value.get<uint64_t>();
    check(value.is_number_integer() && value.get<int64_t>() >= 0, Errc::kInvalidArgument,
          "{} must be an integer in [0, {}], got {}", what, std::numeric_limits<uint64_t>::max(),
          brief(value));
    return static_cast<uint64_t>(value.get<int64_t>());
}

Fields::Fields(const json &object, std::string where) : object_(object), where_(std::move(where)) {
    check(object.is_object(), Errc::kInvalidArgument, "{} must be a JSON object, got {}", where_,
          brief(object));
}

std::string Fields::name(std::string_view key) const {
    return fmt::format("{}: '{}'", where_, key);
}

bool Fields::has(std::string_view key) const {
    return object_.contains(key);
}

const json &Fields::at(std::string_view key) const {
    const auto it = object_.find(key);
    check(it != object_.end(), Errc::kInvalidArgument, "{}: missing field '{}'", where_, key);
    return *it;
}

int64_t Fields::integer(std::string_view key, int64_t lo, int64_t hi) const {
    return jsonfields::integer(at(key), name(key), lo, hi);
}

int64_t Fields::integer(std::string_view key, int64_t lo, int64_t hi, int64_t fallback) const {
    return has(key) ? integer(key, lo, hi) : fallback;
}

uint64_t Fields::unsignedInteger(std::string_view key) const {
    return jsonfields::unsignedInteger(at(key), name(key));
}

std::string Fields::string(std::string_view key, int64_t max_length) const {
    const json &v = at(key);
    check(v.is_string(), Errc::kInvalidArgument, "{} must be a string, got {}", name(key),
          brief(v));
    const auto &s = v.get_ref<const std::string &>();
    check(!s.empty() && static_cast<int64_t>(s.size()) <= max_length, Errc::kInvalidArgument,
          "{} must be a string of 1 to {} characters, got {} characters", name(key), max_length,
          s.size());
    return s;
}

std::string Fields::string(std::string_view key, const std::string &fallback,
                           int64_t max_length) const {
    return has(key) ? string(key, max_length) : fallback;
}

bool Fields::boolean(std::string_view key) const {
    const json &v = at(key);
    check(v.is_boolean(), Errc::kInvalidArgument, "{} must be true or false, got {}", name(key),
          brief(v));
    return v.get<bool>();
}

bool Fields::boolean(std::string_view key, bool fallback) const {
    return has(key) ? boolean(key) : fallback;
}

const json &Fields::array(std::string_view key, int64_t max_size) const {
    const json &v = at(key);
    check(v.is_array(), Errc::kInvalidArgument, "{} must be a list, got {}", name(key), brief(v));
    check(static_cast<int64_t>(v.size()) <= max_size, Errc::kInvalidArgument,
          "{} has {} entries, more than the limit of {}", name(key), v.size(), max_size);
    return v;
}

void Fields::allowOnly(std::initializer_list<std::string_view> known) const {
    for (const auto &item : object_.items()) {
        check(std::find(known.begin(), known.end(), item.key()) != known.end(),
              Errc::kInvalidArgument, "{}: unknown field '{}' (expected one of: {})", where_,
              item.key(), fmt::join(known, ", "));
    }
}

}  // namespace weightsync::jsonfields
