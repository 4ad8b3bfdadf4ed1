#pragma once
// Who hashes which bytes of a checkpoint. Every file is cut into fixed-size chunks (the last one
// shorter), and the manifest lists each chunk's XXH3-64: a reader verifies the chunks of a file
// in parallel, and a trainer rank that writes every byte of a chunk (the header aside: every
// rank writes it, and everybody knows it) hashes that chunk from its own slot arena as soon as
// its writes into it are posted, while later stages still convert, so that nothing is read back
// from the files. Only chunks written by several ranks are hashed once more from the files, by
// rank 0 after every rank synced. Pure: derived from the file layout and the plan alone, the
// same on every rank.

#include "checkpoint/file_layout.h"
#include "planner/plan.h"

#include <cstdint>
#include <vector>

namespace weightsync::checkpoint {

/// Default chunk size of the manifest's hashes.
inline constexpr int64_t kDefaultChunkBytes = int64_t{64} << 20;
/// Largest chunk a manifest or a job spec may name.
inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 40;
/// A chunk whose bytes come from more than one trainer rank.
inline constexpr int kSharedChunk = -1;

/// Number of chunks of a file of `file_bytes` bytes (>= 1).
int64_t chunkCount(int64_t file_bytes, int64_t chunk_bytes);

/// The hash of one chunk.
struct ChunkHash {
    uint32_t file = 0;
    uint32_t chunk = 0;
    uint64_t xxh3 = 0;
    bool operator==(const ChunkHash &) const = default;
};

/// Bytes of a chunk, in file order: the file's header (src_offset < 0), or slot bytes of the
/// rank's arena.
struct ChunkPiece {
    int64_t file_offset = 0;
    int64_t src_offset = -1;  // arena offset; < 0: the header's bytes at file_offset
    int64_t bytes = 0;
};

/// A chunk one rank writes alone, and how to hash it from its arena.
struct OwnedChunk {
    uint32_t file = 0;
    uint32_t chunk = 0;
    std::vector<ChunkPiece> pieces;  // in file order, covering the chunk exactly
    uint32_t writes = 0;             // the rank's writes into it (hash once all are posted)
};

struct ChunkPlan {
    int64_t chunk_bytes = kDefaultChunkBytes;
    std::vector<std::vector<int>> owner;  // [file][chunk]: the one writing rank, or kSharedChunk
    std::vector<OwnedChunk> owned;        // the chunks of the rank asked for, in file order
    std::vector<std::vector<uint32_t>> owned_by_write;  // per write of that rank: owned chunks
};

/// The chunks of `files` for trainer rank `rank` of `plan` (planned against checkpointFleet()).
/// A chunk nobody writes into (header only) belongs to rank 0. Throws Errc::kInvalidArgument for
/// chunk_bytes < 1, Errc::kInternal when the plan's writes do not tile the files.
ChunkPlan chunkPlan(const FileLayout &files, const planner::Plan &plan, int rank,
                    int64_t chunk_bytes = kDefaultChunkBytes);

}  // namespace weightsync::checkpoint
