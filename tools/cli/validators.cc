#include "tools/cli/validators.h"

#include "common/error.h"
#include "control/connect.h"
#include "layout/limits.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

namespace weightsync::cli {

namespace fs = std::filesystem;

namespace {

/// Parses all of `text` as an integer; nullopt for anything else ("1e6", "512.5", "", "12abc").
template <typename Int = int64_t>
std::optional<Int> parseInteger(const std::string &text) {
    Int value = 0;
    const char *end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    return value;
}

}  // namespace

std::pair<std::string, int> parseHostPort(const std::string &text, const std::string &option) {
    const size_t colon = text.rfind(':');
    const std::optional<int64_t> port =
        colon == std::string::npos ? std::nullopt : parseInteger(text.substr(colon + 1));
    check(colon != std::string::npos && colon > 0 && port && *port >= 1 && *port <= 65535,
          Errc::kInvalidArgument, "{} must be host:port with a port in [1, 65535], got '{}'",
          option, text);
    return {text.substr(0, colon), static_cast<int>(*port)};
}

CLI::Validator hostPort() {
    return {[](std::string &text) -> std::string {
                try {
                    (void)parseHostPort(text, "the address");
                } catch (const Error &) {
                    return fmt::format("must be host:port with a port in [1, 65535], got '{}'",
                                       text);
                }
                return {};
            },
            "HOST:PORT"};
}

std::shared_ptr<const control::JobSecret> jobSecret(const std::string &file) {
    if (!file.empty()) return control::JobSecret::fromFile(file);
    const char *text = std::getenv("WEIGHTSYNC_JOB_SECRET");
    if (text == nullptr || *text == '\0') return nullptr;
    return std::make_shared<const control::JobSecret>(text);
}

CLI::Validator storeAddress() {
    return {[](std::string &text) -> std::string {
                try {
                    control::checkStoreAddress(text);
                } catch (const Error &e) {
                    return e.what();
                }
                return {};
            },
            "ADDRESS"};
}

CLI::Validator timeoutSeconds() {
    return {[](std::string &text) -> std::string {
                char *end = nullptr;
                const double value = std::strtod(text.c_str(), &end);
                const bool number = !text.empty() && end == text.c_str() + text.size();
                if (number && std::isfinite(value) && value > 0 &&
                    value <= limits::kMaxTimeoutSeconds) {
                    return {};
                }
                return fmt::format("must be a number of seconds in (0, {}], got '{}'",
                                   limits::kMaxTimeoutSeconds, text);
            },
            "SECONDS > 0"};
}

CLI::Validator integerIn(int64_t lo, int64_t hi) {
    return {[lo, hi](std::string &text) -> std::string {
                const std::optional<int64_t> value = parseInteger(text);
                if (value && *value >= lo && *value <= hi) return {};
                return fmt::format("must be an integer in [{}, {}], got '{}'", lo, hi, text);
            },
            fmt::format("INT in [{}, {}]", lo, hi)};
}

CLI::Validator unsignedInteger() {
    return {[](std::string &text) -> std::string {
                if (parseInteger<uint64_t>(text)) return {};
                return fmt::format("must be an integer in [0, 2^64), got '{}'", text);
            },
            "UINT64"};
}

CLI::Validator nonEmpty() {
    return {[](std::string &text) -> std::string {
                return text.empty() ? std::string("must not be empty") : std::string();
            },
            ""};
}

CLI::Validator inExistingDirectory() {
    return {[](std::string &text) -> std::string {
                if (text.empty()) return "must not be empty";
                const fs::path parent = fs::absolute(fs::path(text)).parent_path();
                std::error_code ec;
                if (!fs::is_directory(parent, ec)) {
                    return fmt::format("'{}' is not an existing directory", parent.string());
                }
                if (fs::is_directory(text, ec)) return fmt::format("'{}' is a directory", text);
                return {};
            },
            ""};
}

CLI::Validator directoryPath() {
    return {[](std::string &text) -> std::string {
                if (text.empty()) return "must not be empty";
                std::error_code ec;
                fs::path p = fs::absolute(fs::path(text), ec);
                if (ec) return fmt::format("'{}' is not a usable path: {}", text, ec.message());
                if (fs::exists(p, ec)) {
                    return fs::is_directory(p, ec)
                               ? std::string()
                               : fmt::format("'{}' exists and is not a directory", text);
                }
                for (p = p.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
                    if (p == p.root_path()) break;
                }
                if (!fs::is_directory(p, ec)) {
                    return fmt::format("'{}' cannot be created: '{}' is not a directory", text,
                                       p.string());
                }
                return {};
            },
            ""};
}

}  // namespace weightsync::cli
