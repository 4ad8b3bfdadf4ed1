#pragma once
// The filesystem transport's two ends (JobSpec::transport == filesystem). Trainers write each
// version as a Hugging Face checkpoint under <fs_root>/step_<N>/ (checkpoint/file_layout.h):
// every rank writes its planned share of the whole tensors into the same temporary files and
// fsyncs them; once every rank is done, trainer rank 0 renames them into place, hashes them and
// writes the manifest last. Inference ranks wait for the manifest, check it against the layout,
// verify the hash of every file they read before copying a byte, then read their slices
// (checkpoint/shard_ranges.h) into their tensors. A directory without a manifest, or one whose
// hashes do not match, is never loaded.

#include "checkpoint/file_layout.h"
#include "checkpoint/manifest.h"
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
    CheckpointWriter(const JobSpec &spec, const layout::Layout &layout);

    /// Opens (creating them if needed) the version's temporary files and writes their headers;
    /// every rank does the same. Rank 0 first removes a manifest left by an earlier job.
    void begin(uint64_t version, bool first_rank);
    /// The write's bytes (from `src`) into the whole tensor w.dest, at w.dest_offset.
    void write(const planner::Write &write, const std::byte *src) const;
    /// fsync of every file of the version.
    void sync() const;
    /// Rank 0, after every rank synced: temporary files -> final names, the index, the hashes,
    /// the manifest (written last, atomically).
    void finalize(uint64_t version);

    [[nodiscard]] const checkpoint::FileLayout &files() const { return files_; }

  private:
    std::string root_;
    const layout::Layout &layout_;
    checkpoint::FileLayout files_;
    std::string dir_;                        // of the version being written
    std::vector<transport::fs::File> open_;  // its temporary files
};

/// One inference rank's reader.
class CheckpointReader {
  public:
    CheckpointReader(const JobSpec &spec, const layout::Layout &layout,
                     const planner::PeerSpec &peer);

    /// Waits (until `deadline`) for version `version`'s manifest, checks it (version, layout,
    /// files) and the XXH3 hash and header of every file this rank reads. Throws naming the
    /// directory or file: kTimeout (no manifest), kMismatch (another layout), kCorruption.
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
