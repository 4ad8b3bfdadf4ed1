#include "engine/checkpoint_io.h"

#include "common/error.h"
#include "common/log.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <new>
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

ChunkHasher::ChunkHasher(const checkpoint::FileLayout &files, const checkpoint::ChunkPlan &chunks)
    : files_(files),
      chunks_(chunks),
      hashes_(chunks.owned.size(), 0),
      hashed_(chunks.owned.size(), false),
      thread_([this] { run(); }) {}

ChunkHasher::~ChunkHasher() {
    {
        const std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void ChunkHasher::begin(const std::byte *arena) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return queue_.empty() && busy_ == 0; });
    arena_ = arena;
    std::fill(hashed_.begin(), hashed_.end(), false);
}

void ChunkHasher::submit(uint32_t owned) {
    {
        const std::lock_guard lock(mutex_);
        queue_.push_back(owned);
    }
    cv_.notify_all();
}

std::vector<checkpoint::ChunkHash> ChunkHasher::finish() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return queue_.empty() && busy_ == 0; });
    std::vector<checkpoint::ChunkHash> out;
    out.reserve(chunks_.owned.size());
    for (size_t i = 0; i < chunks_.owned.size(); ++i) {
        const checkpoint::OwnedChunk &c = chunks_.owned[i];
        check(hashed_[i], Errc::kInternal,
              "chunk {} of '{}' was never hashed: not all its {} "
              "writes were posted",
              c.chunk, files_.files[c.file].name, c.writes);
        out.push_back({c.file, c.chunk, hashes_[i]});
    }
    return out;
}

void ChunkHasher::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and nothing left
        const uint32_t i = queue_.front();
        queue_.pop_front();
        ++busy_;
        lock.unlock();
        const uint64_t h = hash(chunks_.owned[i]);  // reads only memory: cannot fail
        lock.lock();
        hashes_[i] = h;
        hashed_[i] = true;
        --busy_;
        cv_.notify_all();
    }
}

uint64_t ChunkHasher::hash(const checkpoint::OwnedChunk &chunk) const {
    const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                         &XXH3_freeState);
    if (state == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state.get());
    const std::string &header = files_.files[chunk.file].header;
    for (const checkpoint::ChunkPiece &p : chunk.pieces) {
        const void *data = p.src_offset < 0
                               ? static_cast<const void *>(header.data() + p.file_offset)
                               : static_cast<const void *>(arena_ + p.src_offset);
        XXH3_64bits_update(state.get(), data, static_cast<size_t>(p.bytes));
    }
    return XXH3_64bits_digest(state.get());
}

CheckpointWriter::CheckpointWriter(const JobSpec &spec, const layout::Layout &layout,
                                   const planner::Plan &plan, int rank)
    : root_(spec.fs_root),
      layout_(layout),
      plan_(plan.ranks.at(static_cast<size_t>(rank))),
      config_(spec.fs_config),
      files_(checkpoint::fileLayout(layout, spec.fs_file_bytes)),
      chunks_(checkpoint::chunkPlan(files_, plan, rank, spec.fs_chunk_bytes)),
      hasher_(files_, chunks_) {}

void CheckpointWriter::begin(uint64_t version, bool first_rank, const std::byte *arena) {
    hasher_.begin(arena);
    arena_ = arena;
    dir_ = stepDir(root_, version);
    fs::makeDirectories(dir_);
    // A manifest from an earlier job on this root must not vouch for the files rewritten now.
    if (first_rank) fs::removeFile(join(dir_, checkpoint::kManifestName));
    open_.clear();
    for (const checkpoint::CheckpointFile &f : files_.files) {
        open_.push_back(fs::File::create(join(dir_, tempName(f.name)), f.size));
        open_.back().writeAt(0, f.header.data(), f.header.size());
    }
    writes_left_.resize(chunks_.owned.size());
    for (size_t i = 0; i < chunks_.owned.size(); ++i) {
        writes_left_[i] = chunks_.owned[i].writes;
        if (writes_left_[i] == 0) hasher_.submit(static_cast<uint32_t>(i));  // header only
    }
}

void CheckpointWriter::write(size_t index) {
    const planner::Write &w = plan_.writes[index];
    const checkpoint::TensorEntry &t = files_.tensors[w.dest];
    const fs::File &file = open_[t.file];
    file.writeAt(t.offset + w.dest_offset, arena_ + w.src_offset, static_cast<size_t>(w.bytes));
    // The device writes while the next stages convert; sync() then waits for little.
    file.startWriteback(t.offset + w.dest_offset, static_cast<size_t>(w.bytes));
    for (const uint32_t c : chunks_.owned_by_write[index]) {
        if (--writes_left_[c] == 0) hasher_.submit(c);
    }
}

std::vector<checkpoint::ChunkHash> CheckpointWriter::sync() {
    fs::parallelFor(open_.size(), fs::ioThreads(), [&](size_t i) { open_[i].sync(); });
    return hasher_.finish();
}

void CheckpointWriter::finalize(uint64_t version,
                                const std::vector<std::vector<checkpoint::ChunkHash>> &hashes) {
    checkpoint::Manifest m{version, layout_.name(), layout_.fingerprint(), {}};
    for (const checkpoint::CheckpointFile &f : files_.files) {
        m.files.push_back({f.name, f.size, chunks_.chunk_bytes,
                           std::vector<uint64_t>(chunks_.owner[m.files.size()].size(), 0)});
    }
    // Every rank's chunks: exactly the ones it wrote alone, each once.
    std::vector<std::vector<bool>> have(chunks_.owner.size());
    for (size_t f = 0; f < have.size(); ++f) have[f].assign(chunks_.owner[f].size(), false);
    for (size_t t = 0; t < hashes.size(); ++t) {
        for (const checkpoint::ChunkHash &h : hashes[t]) {
            check(h.file < have.size() && h.chunk < have[h.file].size() &&
                      chunks_.owner[h.file][h.chunk] == static_cast<int>(t) &&
                      !have[h.file][h.chunk],
                  Errc::kProtocol,
                  "version {}: trainer rank {} sent the hash of chunk {} of file {}, which it "
                  "did not write alone (or sent it twice)",
                  version, t, h.chunk, h.file);
            have[h.file][h.chunk] = true;
            m.files[h.file].chunks[h.chunk] = h.xxh3;
        }
    }
    std::vector<std::pair<uint32_t, uint32_t>> shared;
    for (size_t f = 0; f < have.size(); ++f) {
        for (size_t c = 0; c < have[f].size(); ++c) {
            if (have[f][c]) continue;
            check(chunks_.owner[f][c] == checkpoint::kSharedChunk, Errc::kProtocol,
                  "version {}: trainer rank {} sent no hash of chunk {} of '{}'", version,
                  chunks_.owner[f][c], c, files_.files[f].name);
            shared.emplace_back(static_cast<uint32_t>(f), static_cast<uint32_t>(c));
        }
    }
    fs::parallelFor(shared.size(), fs::ioThreads(), [&](size_t i) {
        const auto [f, c] = shared[i];
        const int64_t at = static_cast<int64_t>(c) * chunks_.chunk_bytes;
        m.files[f].chunks[c] =
            open_[f].hashRange(at, std::min(chunks_.chunk_bytes, files_.files[f].size - at));
    });
    for (const checkpoint::CheckpointFile &f : files_.files) {
        fs::renameFile(join(dir_, tempName(f.name)), join(dir_, f.name));
    }
    // Small files beside the tensors, listed in the manifest too: the index, and config.json
    // when the job gives one.
    const auto small = [&](std::string_view name, const std::string &content) {
        fs::writeFileAtomically(join(dir_, name), content);
        std::vector<uint64_t> chunks;
        for (size_t at = 0; at < content.size() || chunks.empty();
             at += static_cast<size_t>(chunks_.chunk_bytes)) {
            const size_t n =
                std::min(content.size() - at, static_cast<size_t>(chunks_.chunk_bytes));
            chunks.push_back(XXH3_64bits(content.data() + at, n));
        }
        m.files.push_back({std::string(name), static_cast<int64_t>(content.size()),
                           chunks_.chunk_bytes, std::move(chunks)});
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
    // Every byte this rank will read is checked before any is copied: every chunk of every file
    // it reads, on a few threads.
    std::vector<std::pair<size_t, size_t>> chunks;  // (file, chunk)
    for (size_t f = 0; f < files_.files.size(); ++f) {
        if (!reads_[f]) continue;
        const checkpoint::ManifestFile &listed = m.file(files_.files[f].name, path);
        for (size_t c = 0; c < listed.chunks.size(); ++c) chunks.emplace_back(f, c);
    }
    fs::parallelFor(chunks.size(), fs::ioThreads(), [&](size_t i) {
        const auto [f, c] = chunks[i];
        const checkpoint::ManifestFile &listed = m.file(files_.files[f].name, path);
        const int64_t at = static_cast<int64_t>(c) * listed.chunk_bytes;
        const int64_t bytes = std::min(listed.chunk_bytes, listed.bytes - at);
        const uint64_t got = open_[f].hashRange(at, bytes);
        check(got == listed.chunks[c], Errc::kCorruption,
              "{}: version {}: bytes [{}, {}) of '{}' have XXH3 {}, its manifest says {}: the "
              "file is corrupt and the version is not loaded",
              who_, version, at, at + bytes, open_[f].path(), checkpoint::hashHex(got),
              checkpoint::hashHex(listed.chunks[c]));
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
