#include "engine/checkpoint_io.h"

#include "common/error.h"
#include "common/log.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <system_error>

namespace weightsync::engine {

namespace fs = transport::fs;

namespace {

constexpr int64_t kMaxManifestBytes = int64_t{64} << 20;
constexpr int64_t kWriteBlock = int64_t{1} << 20;  // hashed, then written, while in cache

std::string join(const std::string &dir, std::string_view name) {
    return (std::filesystem::path(dir) / name).string();
}

std::string stepDir(const std::string &root, uint64_t version) {
    return join(root, checkpoint::stepDirName(version));
}

std::string tempName(const std::string &name) {
    return name + ".tmp";
}

}  // namespace

CheckpointWriter::CheckpointWriter(const JobSpec &spec, const layout::Layout &layout,
                                   const planner::Plan &plan, int rank)
    : root_(spec.fs_root),
      layout_(layout),
      plan_(plan.ranks.at(static_cast<size_t>(rank))),
      config_(spec.fs_config),
      files_(checkpoint::fileLayout(layout, spec.fs_file_bytes)),
      written_(plan_.writes.size(), 0) {
    for (const planner::Write &w : plan_.writes)
        ranges_.push_back(checkpoint::writeRange(files_, w));
}

void CheckpointWriter::begin(uint64_t version, bool first_rank, const std::byte *arena) {
    arena_ = arena;
    std::fill(written_.begin(), written_.end(), 0);
    dir_ = stepDir(root_, version);
    fs::makeDirectories(dir_);
    // A manifest from an earlier job on this root must not vouch for the files rewritten now.
    if (first_rank) fs::removeFile(join(dir_, checkpoint::kManifestName));
    open_.clear();
    for (const checkpoint::CheckpointFile &f : files_.files) {
        open_.push_back(fs::File::create(join(dir_, tempName(f.name)), f.size));
        open_.back().writeAt(0, f.header.data(), f.header.size());
    }
}

void CheckpointWriter::write(size_t first, size_t end) {
    fs::parallelFor(end - first, fs::ioThreads(), [&](size_t i) { writeOne(first + i); });
}

void CheckpointWriter::writeOne(size_t index) {
    const planner::Write &w = plan_.writes[index];
    checkpoint::HashedRange &range = ranges_[index];
    const fs::File &file = open_[range.file];
    fs::Xxh3Stream hash;
    // A block at a time: hashing reads it from memory, the write then from cache.
    const std::byte *src = arena_ + w.src_offset;
    for (int64_t at = 0; at < w.bytes;) {
        const auto n = static_cast<size_t>(std::min(w.bytes - at, kWriteBlock));
        hash.update(src + at, n);
        file.writeAt(range.offset + at, src + at, n);
        at += static_cast<int64_t>(n);
    }
    range.xxh3 = hash.digest();
    written_[index] = 1;
    // The device writes while the next stages convert; sync() then waits for little.
    file.startWriteback(range.offset, static_cast<size_t>(w.bytes));
}

std::vector<checkpoint::HashedRange> CheckpointWriter::sync() {
    fs::parallelFor(open_.size(), fs::ioThreads(), [&](size_t i) { open_[i].sync(); });
    for (size_t i = 0; i < written_.size(); ++i) {
        check(written_[i] != 0, Errc::kInternal, "checkpoint write {} of {} was never written", i,
              written_.size());
    }
    return ranges_;
}

void CheckpointWriter::finalize(uint64_t version, std::vector<checkpoint::HashedRange> ranges) {
    for (uint32_t f = 0; f < files_.files.size(); ++f) {  // every rank wrote the same headers
        const std::string &header = files_.files[f].header;
        ranges.push_back(
            {f, 0, static_cast<int64_t>(header.size()), XXH3_64bits(header.data(), header.size())});
    }
    const auto tiled = checkpoint::tileRanges(files_, ranges);
    checkpoint::Manifest m{version, layout_.name(), layout_.fingerprint(), {}};
    for (size_t f = 0; f < files_.files.size(); ++f) {
        checkpoint::ManifestFile file{files_.files[f].name, files_.files[f].size, {}};
        for (const checkpoint::HashedRange &r : tiled[f]) {
            file.ranges.push_back({r.offset, r.bytes, r.xxh3});
        }
        m.files.push_back(std::move(file));
    }
    for (const checkpoint::CheckpointFile &f : files_.files) {
        fs::renameFile(join(dir_, tempName(f.name)), join(dir_, f.name));
    }
    // Small files beside the tensors, listed in the manifest too: the index, and config.json
    // when the job gives one.
    const auto small = [&](std::string_view name, const std::string &content) {
        fs::writeFileAtomically(join(dir_, name), content);
        const auto bytes = static_cast<int64_t>(content.size());
        m.files.push_back(
            {std::string(name), bytes, {{0, bytes, XXH3_64bits(content.data(), content.size())}}});
    };
    small(checkpoint::kIndexName, files_.index().dump(2));
    if (!config_.is_null()) small(checkpoint::kConfigName, config_.dump(2));
    fs::syncDirectory(dir_);
    open_.clear();
    // Last: the manifest is what makes the version loadable.
    fs::writeFileAtomically(join(dir_, checkpoint::kManifestName), m.encode());
}

CheckpointReader::CheckpointReader(const JobSpec &spec, const layout::Layout &layout,
                                   const planner::PeerSpec &peer)
    : root_(spec.fs_root),
      layout_(layout),
      who_("inference " + peer.name),
      files_(checkpoint::fileLayout(layout, spec.fs_file_bytes)),
      runs_(checkpoint::shardRuns(layout, peer)),
      reads_(files_.files.size(), false) {
    for (size_t i = 0; i < runs_.size(); ++i) {
        if (!runs_[i].empty()) reads_[files_.tensors[i].file] = true;
    }
}

void CheckpointReader::verify(uint64_t version, std::chrono::steady_clock::time_point deadline) {
    open_.clear();
    const std::string dir = stepDir(root_, version);
    const std::string path = join(dir, checkpoint::kManifestName);
    fs::waitForFile(path, deadline,
                    fmt::format("{}: version {}: waiting for the checkpoint's manifest (none is "
                                "written when a trainer fails mid-write)",
                                who_, version));
    const checkpoint::Manifest m =
        checkpoint::Manifest::decode(fs::readSmallFile(path, kMaxManifestBytes), path);
    check(m.version == version, Errc::kCorruption, "{}: '{}' is the manifest of version {}", who_,
          path, m.version);
    check(m.fingerprint == layout_.fingerprint(), Errc::kMismatch,
          "{}: '{}' was written for layout '{}' (fingerprint {}), this rank runs '{}' ({})", who_,
          path, m.layout, m.fingerprint, layout_.name(), layout_.fingerprint());
    open_.resize(files_.files.size());
    for (size_t f = 0; f < files_.files.size(); ++f) {
        const checkpoint::CheckpointFile &want = files_.files[f];
        const checkpoint::ManifestFile &listed = m.file(want.name, path);
        check(listed.bytes == want.size, Errc::kCorruption,
              "{}: '{}' lists {} with {} bytes, the layout makes it {}", who_, path, want.name,
              listed.bytes, want.size);
        if (!reads_[f]) continue;
        const std::string file = join(dir, want.name);
        try {
            open_[f] = fs::File::openRead(file);
        } catch (const Error &e) {
            fail(Errc::kCorruption, "{}: version {}: {} (the manifest lists it)", who_, version,
                 e.what());
        }
        check(open_[f].size() == want.size, Errc::kCorruption,
              "{}: version {}: '{}' has {} bytes, the manifest says {}", who_, version, file,
              open_[f].size(), want.size);
    }
    // Every byte this rank will read is checked before any is copied: every range of every file
    // it reads, on a few threads.
    std::vector<std::pair<size_t, const checkpoint::ManifestFile::Range *>> ranges;  // (file, r)
    for (size_t f = 0; f < files_.files.size(); ++f) {
        if (!reads_[f]) continue;
        for (const auto &r : m.file(files_.files[f].name, path).ranges) ranges.emplace_back(f, &r);
    }
    fs::parallelFor(ranges.size(), fs::ioThreads(), [&](size_t i) {
        const auto [f, r] = ranges[i];
        const uint64_t got = open_[f].hashRange(r->offset, r->bytes);
        check(got == r->xxh3, Errc::kCorruption,
              "{}: version {}: bytes [{}, {}) of '{}' have XXH3 {}, its manifest says {}: the "
              "file is corrupt and the version is not loaded",
              who_, version, r->offset, r->offset + r->bytes, open_[f].path(),
              checkpoint::hashHex(got), checkpoint::hashHex(r->xxh3));
    });
    fs::parallelFor(files_.files.size(), fs::ioThreads(), [&](size_t f) {
        if (!reads_[f]) return;
        const checkpoint::CheckpointFile &want = files_.files[f];
        std::string header(want.header.size(), '\0');
        open_[f].readAt(0, header.data(), header.size());
        check(header == want.header, Errc::kMismatch,
              "{}: version {}: the safetensors header of '{}' differs from the one this layout "
              "makes",
              who_, version, open_[f].path());
    });
}

void CheckpointReader::copy(const std::vector<std::byte *> &targets) const {
    check(targets.size() == runs_.size(), Errc::kInternal, "{}: {} targets for {} tensors", who_,
          targets.size(), runs_.size());
    fs::parallelFor(runs_.size(), fs::ioThreads(), [&](size_t i) {
        const checkpoint::TensorEntry &t = files_.tensors[i];
        for (const checkpoint::Run &r : runs_[i]) {
            open_[t.file].readAt(t.offset + r.full, targets[i] + r.local,
                                 static_cast<size_t>(r.bytes));
        }
    });
}

std::vector<std::string> pruneCheckpoints(const std::string &root, uint64_t version,
                                          uint64_t keep) {
    std::vector<std::string> removed;
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator(root, ec)) {
        const std::string name = entry.path().filename().string();
        const uint64_t v = checkpoint::parseStepDirName(name);
        if (v == 0 || v > version || version - v < keep) continue;
        std::error_code rm;
        std::filesystem::remove_all(entry.path(), rm);
        if (rm) {
            logger("inference")
                ->warn("retention: cannot remove '{}': {}", entry.path().string(), rm.message());
            continue;
        }
        removed.push_back(name);
    }
    if (ec) logger("inference")->warn("retention: cannot list '{}': {}", root, ec.message());
    return removed;
}

}  // namespace weightsync::engine
