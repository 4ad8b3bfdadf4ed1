#include "checkpoint/manifest.h"

#include "common/error.h"
#include "layout/json_fields.h"
#include "layout/limits.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <limits>

namespace weightsync::checkpoint {

namespace {

constexpr std::string_view kFormat = "weightsync-checkpoint/1";
constexpr int64_t kMaxFiles = 1 << 20;
constexpr int64_t kHashDigits = 16;

uint64_t parseHash(const std::string &text, const std::string &where) {
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 16);
    check(static_cast<int64_t>(text.size()) == kHashDigits && ec == std::errc{} &&
              end == text.data() + text.size(),
          Errc::kInvalidArgument, "{}: 'xxh3' must be {} hex digits, got '{}'", where, kHashDigits,
          text);
    return v;
}

}  // namespace

std::string hashHex(uint64_t hash) {
    return fmt::format("{:016x}", hash);
}

std::string Manifest::encode() const {
    nlohmann::json list = nlohmann::json::array();
    for (const ManifestFile &f : files) {
        list.push_back({{"name", f.name}, {"bytes", f.bytes}, {"xxh3", hashHex(f.xxh3)}});
    }
    return nlohmann::json{{"format", kFormat},
                          {"version", version},
                          {"layout", layout},
                          {"fingerprint", fingerprint},
                          {"files", list}}
        .dump(1);
}

Manifest Manifest::decode(std::string_view text, const std::string &where) {
    try {
        const nlohmann::json j = jsonfields::parse(text, where);
        const jsonfields::Fields f(j, where);
        f.allowOnly({"format", "version", "layout", "fingerprint", "files"});
        check(f.string("format", 64) == kFormat, Errc::kInvalidArgument,
              "{}: 'format' must be '{}'", where, kFormat);
        Manifest m;
        m.version = f.unsignedInteger("version");
        m.layout = f.string("layout");
        m.fingerprint = f.string("fingerprint", 64);
        const nlohmann::json &files = f.array("files", kMaxFiles);
        for (size_t i = 0; i < files.size(); ++i) {
            const jsonfields::Fields e(files[i], fmt::format("{}: files[{}]", where, i));
            e.allowOnly({"name", "bytes", "xxh3"});
            ManifestFile file;
            file.name = e.string("name", limits::kMaxNameLength);
            check(file.name.find('/') == std::string::npos && file.name != "." && file.name != "..",
                  Errc::kInvalidArgument, "{}: '{}' is not a plain file name", e.where(),
                  file.name);
            file.bytes = e.integer("bytes", 0, std::numeric_limits<int64_t>::max());
            file.xxh3 = parseHash(e.string("xxh3", 64), e.where());
            m.files.push_back(std::move(file));
        }
        return m;
    } catch (const Error &e) {
        std::string_view message = e.what();
        const std::string prefix = fmt::format("{}: ", errcName(e.code()));
        if (message.starts_with(prefix)) message.remove_prefix(prefix.size());
        throw Error(Errc::kCorruption, std::string(message));
    }
}

const ManifestFile &Manifest::file(const std::string &name, const std::string &where) const {
    for (const ManifestFile &f : files) {
        if (f.name == name) return f;
    }
    fail(Errc::kCorruption, "{}: the manifest of version {} lists no file '{}'", where, version,
         name);
}

}  // namespace weightsync::checkpoint
