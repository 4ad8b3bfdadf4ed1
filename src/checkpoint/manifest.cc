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

constexpr std::string_view kFormat = "weightsync-checkpoint/2";
constexpr int64_t kMaxFiles = 1 << 20;
constexpr int64_t kMaxRanges = int64_t{1} << 24;
constexpr int64_t kHashDigits = 16;

}  // namespace

uint64_t parseHashHex(const std::string &text, const std::string &where) {
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 16);
    check(static_cast<int64_t>(text.size()) == kHashDigits && ec == std::errc{} &&
              end == text.data() + text.size(),
          Errc::kInvalidArgument, "{}: a hash must be {} hex digits, got '{}'", where, kHashDigits,
          text);
    return v;
}

std::string hashHex(uint64_t hash) {
    return fmt::format("{:016x}", hash);
}

std::string Manifest::encode() const {
    nlohmann::json list = nlohmann::json::array();
    for (const ManifestFile &f : files) {
        nlohmann::json ranges = nlohmann::json::array();
        for (const ManifestFile::Range &r : f.ranges) {
            ranges.push_back({r.offset, r.bytes, hashHex(r.xxh3)});
        }
        list.push_back({{"name", f.name}, {"bytes", f.bytes}, {"xxh3_ranges", ranges}});
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
            e.allowOnly({"name", "bytes", "xxh3_ranges"});
            ManifestFile file;
            file.name = e.string("name", limits::kMaxNameLength);
            check(file.name.find('/') == std::string::npos && file.name != "." && file.name != "..",
                  Errc::kInvalidArgument, "{}: '{}' is not a plain file name", e.where(),
                  file.name);
            file.bytes = e.integer("bytes", 0, std::numeric_limits<int64_t>::max());
            const nlohmann::json &ranges = e.array("xxh3_ranges", kMaxRanges);
            int64_t at = 0;
            for (const nlohmann::json &r : ranges) {
                check(r.is_array() && r.size() == 3 && r[2].is_string(), Errc::kInvalidArgument,
                      "{}: 'xxh3_ranges' holds {}, not [offset, bytes, hex hash]", e.where(),
                      jsonfields::brief(r));
                ManifestFile::Range range{jsonfields::integer(r[0], "offset", 0, file.bytes),
                                          jsonfields::integer(r[1], "bytes", 1, file.bytes), 0};
                range.xxh3 = parseHashHex(r[2].get<std::string>(), e.where());
                check(range.offset == at, Errc::kInvalidArgument,
                      "{}: 'xxh3_ranges' {} at byte {} (next range at {})", e.where(),
                      range.offset > at ? "leave a gap" : "overlap", at, range.offset);
                check(range.bytes <= file.bytes - at, Errc::kInvalidArgument,
                      "{}: 'xxh3_ranges' run past the file's {} bytes", e.where(), file.bytes);
                at += range.bytes;
                file.ranges.push_back(range);
            }
            check(at == file.bytes, Errc::kInvalidArgument,
                  "{}: 'xxh3_ranges' cover {} bytes of {}", e.where(), at, file.bytes);
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
