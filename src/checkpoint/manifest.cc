#include "checkpoint/manifest.h"

#include "checkpoint/chunks.h"

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
constexpr int64_t kMaxChunks = int64_t{1} << 24;
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
        nlohmann::json chunks = nlohmann::json::array();
        for (const uint64_t h : f.chunks) chunks.push_back(hashHex(h));
        list.push_back({{"name", f.name},
                        {"bytes", f.bytes},
                        {"chunk_bytes", f.chunk_bytes},
                        {"xxh3_chunks", chunks}});
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
            e.allowOnly({"name", "bytes", "chunk_bytes", "xxh3_chunks"});
            ManifestFile file;
            file.name = e.string("name", limits::kMaxNameLength);
            check(file.name.find('/') == std::string::npos && file.name != "." && file.name != "..",
                  Errc::kInvalidArgument, "{}: '{}' is not a plain file name", e.where(),
                  file.name);
            file.bytes = e.integer("bytes", 0, std::numeric_limits<int64_t>::max());
            file.chunk_bytes = e.integer("chunk_bytes", 1, kMaxChunkBytes);
            const int64_t count = chunkCount(file.bytes, file.chunk_bytes);
            const nlohmann::json &chunks = e.array("xxh3_chunks", kMaxChunks);
            check(static_cast<int64_t>(chunks.size()) == count, Errc::kInvalidArgument,
                  "{}: 'xxh3_chunks' has {} hashes, {} bytes in chunks of {} make {}", e.where(),
                  chunks.size(), file.bytes, file.chunk_bytes, count);
            for (const nlohmann::json &h : chunks) {
                check(h.is_string(), Errc::kInvalidArgument,
                      "{}: 'xxh3_chunks' holds a {}, not a hex string", e.where(), h.type_name());
                file.chunks.push_back(parseHashHex(h.get<std::string>(), e.where()));
            }
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
