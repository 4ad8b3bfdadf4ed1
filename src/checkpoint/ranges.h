#pragma once
// How a checkpoint's bytes are hashed. The manifest lists, per file, byte ranges that tile it
// exactly, each with its XXH3-64: the safetensors header, and every write of the trainers' plan.
// A write has one writer, which hashes it from its own slots a block at a time just before
// writing that block (the write then reads it from cache), so no rank reads a file back
// whatever the mesh, and a reader verifies the ranges of a file in parallel. Pure:
// encoding-free checks on plain structs.

#include "checkpoint/file_layout.h"
#include "planner/plan.h"

#include <cstdint>
#include <vector>

namespace weightsync::checkpoint {

/// One hashed byte range of a checkpoint file.
struct HashedRange {
    uint32_t file = 0;
    int64_t offset = 0;
    int64_t bytes = 0;
    uint64_t xxh3 = 0;
    bool operator==(const HashedRange &) const = default;
};

/// Where write `w` (planned against checkpointFleet()) lands: its file and byte range (xxh3 0).
/// Errc::kInternal when it leaves its tensor.
HashedRange writeRange(const FileLayout &files, const planner::Write &w);

/// Every file's ranges in file order, checked to tile the file exactly: [0, size) with neither
/// gap nor overlap. Errc::kProtocol naming the file and the first gap or overlap otherwise (a
/// rank sent a wrong list).
std::vector<std::vector<HashedRange>> tileRanges(const FileLayout &files,
                                                 const std::vector<HashedRange> &ranges);

}  // namespace weightsync::checkpoint
