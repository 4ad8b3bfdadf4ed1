#pragma once
// The filesystem transport's two ends (JobSpec::transport == filesystem). Trainers write each
// version as a Hugging Face checkpoint under <fs_root>/step_<N>/ (checkpoint/file_layout.h):
// every rank writes its planned share of the whole tensors into the same temporary files and
// fsyncs them, hashing each write's bytes a block at a time just before writing the block, so
// that the write reads them from cache (checkpoint/ranges.h); once every rank is done, trainer rank
// 0 renames the files into place and writes the manifest last, with every rank's hashes. Inference
// ranks wait for the manifest, check it against the layout, verify the hash of every range of every
// file they read before copying a byte, then read their slices (checkpoint/shard_ranges.h) into
// their tensors. A directory without a manifest, or one whose hashes do not match, is never loaded.

#include "checkpoint/file_layout.h"
#include "checkpoint/manifest.h"
#include "checkpoint/ranges.h"
#include "checkpoint/shard_ranges.h"
#include "engine/job.h"
#include "layout/layout.h"
#include "planner/plan.h"
#include "transport/filesystem/files.h"

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace weightsync::engine {

/// One trainer rank's writer.
class CheckpointWriter {
  public:
    CheckpointWriter(const JobSpec &spec, const layout::Layout &layout, const planner::Plan &plan,
                     int rank);

    /// Opens (creating them if needed) the version's temporary files and writes their headers;
    /// every rank does the same. Rank 0 first removes a manifest left by an earlier job.
    /// `arena`: the rank's slots, which the version's writes read from.
    void begin(uint64_t version, bool first_rank, const std::byte *arena);
    /// Writes [first, end) of the rank's plan, each into its whole tensor at its offset, on a
    /// few threads (one write each).
    void write(size_t first, size_t end);
    /// fsync of every file of the version, then the hashed ranges of this rank's writes.
    std::vector<checkpoint::HashedRange> sync();
    /// Rank 0, after every rank synced, with every rank's hashed ranges: temporary files ->
    /// final names, the index and config.json (JobSpec::fs_config), the manifest (written last,
    /// atomically). Errc::kProtocol when the ranges (and the headers) do not tile the files.
    void finalize(uint64_t version, std::vector<checkpoint::HashedRange> ranges);

    [[nodiscard]] const checkpoint::FileLayout &files() const { return files_; }

  private:
    /// Write `index` of the plan, hashed a block at a time just before writing the block.
    void writeOne(size_t index);
    std::string root_;
    const layout::Layout &layout_;
    const planner::RankPlan &plan_;
    nlohmann::json config_;  // config.json of every step directory (null: none)
    checkpoint::FileLayout files_;
    std::vector<checkpoint::HashedRange> ranges_;  // per write of the plan, hashed as written
    std::vector<uint8_t> written_;  // per write: written this version (set by several threads)
    const std::byte *arena_ = nullptr;
    std::string dir_;                        // of the version being written
    std::vector<transport::fs::File> open_;  // its temporary files
};

/// One inference rank's reader.
class CheckpointReader {
  public:
    CheckpointReader(const JobSpec &spec, const layout::Layout &layout,
                     const planner::PeerSpec &peer);

    /// Waits (until `deadline`) for version `version`'s manifest, checks it (version, layout,
    /// files) and the XXH3 hash of every range and the header of every file this rank reads. Throws
    /// naming the directory or file: kTimeout (no manifest), kMismatch (another layout),
    /// kCorruption.
    void verify(uint64_t version, std::chrono::steady_clock::time_point deadline);
    /// Reads the rank's slices of the verified version into `targets` (layout.dests() order,
    /// each the rank's local tensor).
    void copy(const std::vector<std::byte *> &targets) const;

  private:
    std::string root_;
    const layout::Layout &layout_;
    std::string who_;
    checkpoint::FileLayout files_;
    std::vector<std::vector<checkpoint::Run>> runs_;  // per dest
    std::vector<bool> reads_;                         // per file: this rank reads from it
    std::vector<transport::fs::File> open_;           // the verified version's files
};

/// Deletes step directories of versions <= version - keep under `root` (newer ones, and the
/// one just loaded, stay). Returns the names it removed; failures are logged, not thrown.
std::vector<std::string> pruneCheckpoints(const std::string &root, uint64_t version, uint64_t keep);

}  // namespace weightsync::engine
