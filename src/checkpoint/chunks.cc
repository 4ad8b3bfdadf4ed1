#include "checkpoint/chunks.h"

#include "common/error.h"

#include <algorithm>
#include <map>
#include <utility>

namespace weightsync::checkpoint {

namespace {

constexpr int kNobody = -2;  // no write touches the chunk (yet)

}  // namespace

int64_t chunkCount(int64_t file_bytes, int64_t chunk_bytes) {
    return std::max<int64_t>(1, (file_bytes + chunk_bytes - 1) / chunk_bytes);
}

ChunkPlan chunkPlan(const FileLayout &files, const planner::Plan &plan, int rank,
                    int64_t chunk_bytes) {
    check(chunk_bytes >= 1, Errc::kInvalidArgument, "checkpoint chunk size must be >= 1, got {}",
          chunk_bytes);
    check(rank >= 0 && static_cast<size_t>(rank) < plan.ranks.size(), Errc::kInvalidArgument,
          "trainer rank {} is not in a plan of {} ranks", rank, plan.ranks.size());
    ChunkPlan out;
    out.chunk_bytes = chunk_bytes;
    for (const CheckpointFile &f : files.files) {
        out.owner.emplace_back(static_cast<size_t>(chunkCount(f.size, chunk_bytes)), kNobody);
    }
    std::map<std::pair<uint32_t, uint32_t>, OwnedChunk> mine;  // this rank's chunks so far
    const auto &my_writes = plan.ranks[static_cast<size_t>(rank)].writes;
    out.owned_by_write.resize(my_writes.size());
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> touched(my_writes.size());
    for (const planner::RankPlan &rp : plan.ranks) {
        for (size_t i = 0; i < rp.writes.size(); ++i) {
            const planner::Write &w = rp.writes[i];
            check(w.dest < files.tensors.size(), Errc::kInternal,
                  "a checkpoint write names tensor {} of {}", w.dest, files.tensors.size());
            const TensorEntry &t = files.tensors[w.dest];
            const int64_t begin = t.offset + w.dest_offset;
            const int64_t end = begin + w.bytes;
            check(w.dest_offset >= 0 && w.bytes > 0 && w.dest_offset + w.bytes <= t.bytes,
                  Errc::kInternal, "a checkpoint write of {} bytes at {} leaves tensor '{}'",
                  w.bytes, w.dest_offset, t.name);
            for (int64_t c = begin / chunk_bytes; c * chunk_bytes < end; ++c) {
                int &owner = out.owner[t.file][static_cast<size_t>(c)];
                owner = owner == kNobody || owner == rp.rank ? rp.rank : kSharedChunk;
                if (rp.rank != rank) continue;
                const int64_t from = std::max(begin, c * chunk_bytes);
                const int64_t to = std::min(end, (c + 1) * chunk_bytes);
                const std::pair<uint32_t, uint32_t> key{t.file, static_cast<uint32_t>(c)};
                OwnedChunk &chunk = mine[key];
                chunk.pieces.push_back({from, w.src_offset + (from - begin), to - from});
                ++chunk.writes;
                touched[i].push_back(key);
            }
        }
    }
    for (size_t f = 0; f < files.files.size(); ++f) {
        const CheckpointFile &file = files.files[f];
        for (size_t c = 0; c < out.owner[f].size(); ++c) {
            int &owner = out.owner[f][c];
            if (owner == kNobody) owner = 0;  // header only: rank 0 hashes it
            if (owner != rank) continue;
            OwnedChunk &chunk = mine[{static_cast<uint32_t>(f), static_cast<uint32_t>(c)}];
            chunk.file = static_cast<uint32_t>(f);
            chunk.chunk = static_cast<uint32_t>(c);
            const int64_t start = static_cast<int64_t>(c) * chunk_bytes;
            const int64_t stop = std::min(file.size, start + chunk_bytes);
            const auto header = static_cast<int64_t>(file.header.size());
            if (start < header) chunk.pieces.push_back({start, -1, std::min(header, stop) - start});
            std::sort(chunk.pieces.begin(), chunk.pieces.end(),
                      [](const ChunkPiece &a, const ChunkPiece &b) {
                          return a.file_offset < b.file_offset;
                      });
            int64_t at = start;
            for (const ChunkPiece &p : chunk.pieces) {
                check(p.file_offset == at, Errc::kInternal,
                      "checkpoint file '{}': bytes [{}, {}) of chunk {} are {} by trainer rank "
                      "{}'s writes",
                      file.name, std::min(at, p.file_offset), std::max(at, p.file_offset), c,
                      p.file_offset > at ? "not covered" : "covered twice", rank);
                at += p.bytes;
            }
            check(at == stop, Errc::kInternal,
                  "checkpoint file '{}': bytes [{}, {}) of chunk {} are not covered by trainer "
                  "rank {}'s writes",
                  file.name, at, stop, c, rank);
        }
    }
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> index;
    for (auto &[key, chunk] : mine) {
        if (out.owner[key.first][key.second] != rank) continue;  // shared with another rank
        index[key] = static_cast<uint32_t>(out.owned.size());
        out.owned.push_back(std::move(chunk));
    }
    for (size_t i = 0; i < touched.size(); ++i) {
        for (const auto &key : touched[i]) {
            if (const auto it = index.find(key); it != index.end()) {
                out.owned_by_write[i].push_back(it->second);
            }
        }
    }
    return out;
}

}  // namespace weightsync::checkpoint
