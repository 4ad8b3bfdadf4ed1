#include "engine/checkpoint_io.h"

#include "common/error.h"
#include "common/log.h"

#include <filesystem>
#include <system_error>

namespace weightsync::engine {

namespace fs = transport::fs;

namespace {

constexpr int64_t kMaxManifestBytes = int64_t{64} << 20;

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

CheckpointWriter::CheckpointWriter(const JobSpec &spec, const layout::Layout &layout)
    : root_(spec.fs_root),
      layout_(layout),
      files_(checkpoint::fileLayout(layout, spec.fs_file_bytes)) {}

void CheckpointWriter::begin(uint64_t version, bool first_rank) {
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

void CheckpointWriter::write(const planner::Write &w, const std::byte *src) const {
    const checkpoint::TensorEntry &t = files_.tensors[w.dest];
    const fs::File &file = open_[t.file];
    file.writeAt(t.offset + w.dest_offset, src, static_cast<size_t>(w.bytes));
    // The device writes while the next stages convert; sync() then waits for little.
    file.startWriteback(t.offset + w.dest_offset, static_cast<size_t>(w.bytes));
}

void CheckpointWriter::sync() const {
    fs::parallelFor(open_.size(), fs::ioThreads(), [&](size_t i) { open_[i].sync(); });
}

void CheckpointWriter::finalize(uint64_t version) {
    for (const checkpoint::CheckpointFile &f : files_.files) {
        fs::renameFile(join(dir_, tempName(f.name)), join(dir_, f.name));
    }
    fs::writeFileAtomically(join(dir_, checkpoint::kIndexName), files_.index().dump(2));
    fs::syncDirectory(dir_);
    checkpoint::Manifest m{version, layout_.name(), layout_.fingerprint(), {}};
    m.files.resize(files_.files.size() + 1);
    fs::parallelFor(m.files.size(), fs::ioThreads(), [&](size_t i) {
        if (i < files_.files.size()) {
            m.files[i] = {files_.files[i].name, files_.files[i].size, open_[i].hash()};
            return;
        }
        const fs::File index = fs::File::openRead(join(dir_, checkpoint::kIndexName));
        m.files[i] = {std::string(checkpoint::kIndexName), index.size(), index.hash()};
    });
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
    // Every byte this rank will read is checked before any is copied.
    fs::parallelFor(files_.files.size(), fs::ioThreads(), [&](size_t f) {
        if (!reads_[f]) return;
        const checkpoint::CheckpointFile &want = files_.files[f];
        const uint64_t expected = m.file(want.name, path).xxh3;
        const uint64_t got = open_[f].hash();
        check(got == expected, Errc::kCorruption,
              "{}: version {}: '{}' has XXH3 {}, its manifest says {}: the file is corrupt and "
              "the version is not loaded",
              who_, version, open_[f].path(), checkpoint::hashHex(got),
              checkpoint::hashHex(expected));
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
