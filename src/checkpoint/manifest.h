#pragma once
// The manifest of one checkpoint version, written last (after every file is final): which
// version, which layout, and each file's size and XXH3-64 hash. A directory without a manifest
// is a torn or partial write and is never loaded. Pure: encoding and strict decoding only.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::checkpoint {

struct ManifestFile {
    std::string name;
    int64_t bytes = 0;
    uint64_t xxh3 = 0;  // XXH3-64 of the whole file, seed 0
    bool operator==(const ManifestFile &) const = default;
};

struct Manifest {
    uint64_t version = 0;
    std::string layout;       // the layout's name
    std::string fingerprint;  // the layout's fingerprint
    std::vector<ManifestFile> files;

    [[nodiscard]] std::string encode() const;
    /// Strict: the format tag, every field of its type, hashes as 16 hex digits. Throws
    /// Error(kCorruption) naming `where` (the manifest's path) and the problem.
    static Manifest decode(std::string_view text, const std::string &where);
    /// The entry for `name`; Error(kCorruption) naming the manifest when it has none.
    [[nodiscard]] const ManifestFile &file(const std::string &name, const std::string &where) const;
};

std::string hashHex(uint64_t hash);

}  // namespace weightsync::checkpoint
