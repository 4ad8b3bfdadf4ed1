// Who hashes which chunk of a checkpoint: every chunk a rank writes alone is rebuilt, byte for
// byte, from that rank's arena by its pieces (checked against the file the plan's writes make),
// chunks several ranks write are marked shared, and every rank computes the same owners.

#include "checkpoint/chunks.h"
#include "common/error.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace weightsync::checkpoint {
namespace {

/// A rank's arena with bytes that differ between ranks and offsets.
std::vector<std::byte> arenaOf(const planner::RankPlan &rp) {
    std::vector<std::byte> a(static_cast<size_t>(rp.arena_bytes));
    for (size_t i = 0; i < a.size(); ++i) {
        a[i] =
            static_cast<std::byte>((i * 131 + static_cast<size_t>(rp.rank) * 17 + i / 251) & 0xff);
    }
    return a;
}

void checkChunks(const layout::Layout &l, const planner::TrainerMesh &mesh, int64_t file_bytes,
                 int64_t chunk_bytes) {
    SCOPED_TRACE(::testing::Message() << "ranks " << mesh.ranks() << ", files of " << file_bytes
                                      << ", chunks of " << chunk_bytes);
    const planner::Plan plan = planner::buildPlan(l, mesh, checkpointFleet());
    const FileLayout files = fileLayout(l, file_bytes);
    // The files as the plan's writes make them.
    std::vector<std::vector<std::byte>> disk;
    for (const CheckpointFile &f : files.files) {
        disk.emplace_back(static_cast<size_t>(f.size));
        std::memcpy(disk.back().data(), f.header.data(), f.header.size());
    }
    std::vector<std::vector<std::byte>> arenas;
    std::vector<std::vector<int>> writers(files.files.size());
    for (size_t f = 0; f < files.files.size(); ++f) {
        writers[f].assign(static_cast<size_t>(chunkCount(files.files[f].size, chunk_bytes)), -2);
    }
    for (const planner::RankPlan &rp : plan.ranks) {
        arenas.push_back(arenaOf(rp));
        for (const planner::Write &w : rp.writes) {
            const TensorEntry &t = files.tensors[w.dest];
            std::memcpy(disk[t.file].data() + t.offset + w.dest_offset,
                        arenas.back().data() + w.src_offset, static_cast<size_t>(w.bytes));
            const int64_t begin = t.offset + w.dest_offset;
            for (int64_t c = begin / chunk_bytes; c * chunk_bytes < begin + w.bytes; ++c) {
                int &who = writers[t.file][static_cast<size_t>(c)];
                who = who == -2 || who == rp.rank ? rp.rank : kSharedChunk;
            }
        }
    }
    for (auto &per_file : writers) {
        for (int &who : per_file) who = who == -2 ? 0 : who;
    }
    size_t owned_total = 0;
    for (int rank = 0; rank < mesh.ranks(); ++rank) {
        const ChunkPlan cp = chunkPlan(files, plan, rank, chunk_bytes);
        EXPECT_EQ(cp.owner, writers) << "rank " << rank;
        ASSERT_EQ(cp.owned_by_write.size(), plan.ranks[static_cast<size_t>(rank)].writes.size());
        std::vector<uint32_t> fills(cp.owned.size(), 0);
        for (const auto &chunks : cp.owned_by_write) {
            for (const uint32_t c : chunks) ++fills.at(c);
        }
        for (size_t i = 0; i < cp.owned.size(); ++i) {
            const OwnedChunk &c = cp.owned[i];
            EXPECT_EQ(cp.owner[c.file][c.chunk], rank);
            EXPECT_EQ(fills[i], c.writes);
            std::vector<std::byte> rebuilt;
            for (const ChunkPiece &p : c.pieces) {
                const std::byte *src =
                    p.src_offset < 0
                        ? reinterpret_cast<const std::byte *>(files.files[c.file].header.data()) +
                              p.file_offset
                        : arenas[static_cast<size_t>(rank)].data() + p.src_offset;
                rebuilt.insert(rebuilt.end(), src, src + p.bytes);
            }
            const int64_t at = static_cast<int64_t>(c.chunk) * chunk_bytes;
            const int64_t n = std::min(chunk_bytes, files.files[c.file].size - at);
            ASSERT_EQ(static_cast<int64_t>(rebuilt.size()), n);
            EXPECT_EQ(std::memcmp(rebuilt.data(), disk[c.file].data() + at, rebuilt.size()), 0)
                << "chunk " << c.chunk << " of file " << c.file;
        }
        owned_total += cp.owned.size();
    }
    size_t shared = 0, chunks = 0;
    for (const auto &per_file : writers) {
        for (const int who : per_file) shared += who == kSharedChunk ? 1 : 0;
        chunks += per_file.size();
    }
    EXPECT_EQ(owned_total + shared, chunks);  // every chunk hashed exactly once
}

TEST(CheckpointChunks, OwnedChunksRebuildTheFilesFromTheirRanksArenas) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    for (const int64_t chunk : {int64_t{4096}, int64_t{100'003}, int64_t{1} << 30}) {
        checkChunks(l, {1, 1, 1}, int64_t{1} << 40, chunk);
        checkChunks(l, {1, 1, 1}, 200'000, chunk);
        checkChunks(l, {1, 4, 2}, 200'000, chunk);
        checkChunks(l, {2, 2, 1}, int64_t{1} << 40, chunk);  // HSDP: replica 0 writes
    }
}

TEST(CheckpointChunks, OneRankOwnsEveryChunkAndSeveralRanksShareSome) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const FileLayout files = fileLayout(l, int64_t{1} << 40);
    const ChunkPlan one =
        chunkPlan(files, planner::buildPlan(l, {1, 1, 1}, checkpointFleet()), 0, 65536);
    for (const auto &per_file : one.owner) {
        for (const int who : per_file) EXPECT_EQ(who, 0);
    }
    const ChunkPlan four =
        chunkPlan(files, planner::buildPlan(l, {1, 4, 2}, checkpointFleet()), 1, 65536);
    bool any_shared = false;
    for (const auto &per_file : four.owner) {
        for (const int who : per_file) any_shared = any_shared || who == kSharedChunk;
    }
    EXPECT_TRUE(any_shared);
    EXPECT_THROW((void)chunkPlan(files, planner::buildPlan(l, {1, 1, 1}, checkpointFleet()), 0, 0),
                 Error);
    EXPECT_THROW((void)chunkPlan(files, planner::buildPlan(l, {1, 1, 1}, checkpointFleet()), 1),
                 Error);
}

}  // namespace
}  // namespace weightsync::checkpoint
