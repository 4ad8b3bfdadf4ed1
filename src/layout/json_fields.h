#pragma once
// Strict readers of JSON documents that come from files or other processes (layouts, job
// specs). Numbers must be JSON integers in range (512.5, 1e6 and 2^64 are refused, never
// truncated or wrapped), fields must have their JSON type, and objects may hold only the keys the
// format names. Every error is an Error(kInvalidArgument) naming where it is and the field.

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace weightsync::jsonfields {

/// Parses a JSON text, refusing documents nested deeper than limits::kMaxJsonDepth.
/// `what` names the document in errors ("layout file 'x.json'").
nlohmann::json parse(std::string_view text, std::string_view what);

/// `e` with "<where>: " put before its message (its code and "<code>: " prefix kept once).
Error inContext(const Error &e, std::string_view where);

/// A short rendering of a JSON value for error messages (at most ~60 characters).
std::string brief(const nlohmann::json &value);

/// `value` as an integer in [lo, hi]; `what` names it in the error.
int64_t integer(const nlohmann::json &value, std::string_view what, int64_t lo, int64_t hi);
/// `value` as a non-negative integer below 2^64.
uint64_t unsignedInteger(const nlohmann::json &value, std::string_view what);

/// The fields of one JSON object, read strictly. `where` prefixes every error ("job spec",
/// "source 'layers.{i}.q.weight'").
class Fields {
  public:
    Fields(const nlohmann::json &object, std::string where);

    [[nodiscard]] bool has(std::string_view key) const;
    /// The field's value; a missing field is an error naming it.
    [[nodiscard]] const nlohmann::json &at(std::string_view key) const;

    [[nodiscard]] int64_t integer(std::string_view key, int64_t lo, int64_t hi) const;
    [[nodiscard]] int64_t integer(std::string_view key, int64_t lo, int64_t hi,
                                  int64_t fallback) const;
    [[nodiscard]] uint64_t unsignedInteger(std::string_view key) const;
    /// A string of 1..max_length characters.
    [[nodiscard]] std::string string(std::string_view key, int64_t max_length = 4096) const;
    [[nodiscard]] std::string string(std::string_view key, const std::string &fallback,
                                     int64_t max_length = 4096) const;
    [[nodiscard]] bool boolean(std::string_view key) const;
    [[nodiscard]] bool boolean(std::string_view key, bool fallback) const;
    /// An array (of any length up to max_size).
    [[nodiscard]] const nlohmann::json &array(std::string_view key, int64_t max_size) const;

    /// Refuses any key outside `known` (a misspelt optional field would otherwise be ignored).
    void allowOnly(std::initializer_list<std::string_view> known) const;

    [[nodiscard]] const std::string &where() const { return where_; }
    /// "<where>: '<key>'", for callers that check a field's value themselves.
    [[nodiscard]] std::string name(std::string_view key) const;

  private:
    const nlohmann::json &object_;
    std::string where_;
};

}  // namespace weightsync::jsonfields
