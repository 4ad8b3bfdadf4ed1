#pragma once
// The manifest of one checkpoint version, written last (after every file is final): which
// version, which layout, and each file's size and the XXH3-64 hash of each of the byte ranges
// that tile it (checkpoint/ranges.h: the header and every write of the plan). A directory
// without a manifest is a torn or partial write and is never loaded. Pure: encoding and strict
// decoding only.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::checkpoint {

struct ManifestFile {
    std::string name;
    int64_t bytes = 0;
    struct Range {
        int64_t offset = 0;
        int64_t bytes = 0;
        uint64_t xxh3 = 0;  // XXH3-64, seed 0
        bool operator==(const Range &) const = default;
    };
    std::vector<Range> ranges;  // in file order, tiling [0, bytes)
    bool operator==(const ManifestFile &) const = default;
};

struct Manifest {
    uint64_t version = 0;
    std::string layout;       // the layout's name
    std::string fingerprint;  // the layout's fingerprint
    std::vector<ManifestFile> files;

    [[nodiscard]] std::string encode() const;
    /// Strict: the format tag, every field of its type, hashes as 16 hex digits, ranges that tile
    /// each file exactly. Throws
    /// Error(kCorruption) naming `where` (the manifest's path) and the problem.
    static Manifest decode(std::string_view text, const std::string &where);
    /// The entry for `name`; Error(kCorruption) naming the manifest when it has none.
    [[nodiscard]] const ManifestFile &file(const std::string &name, const std::string &where) const;
};

std::string hashHex(uint64_t hash);
/// The hash of 16 hex digits; Error(kInvalidArgument) naming `where` otherwise.
uint64_t parseHashHex(const std::string &text, const std::string &where);

}  // namespace weightsync::checkpoint
