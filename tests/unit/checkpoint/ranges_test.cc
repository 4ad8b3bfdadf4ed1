// The hashed ranges of a checkpoint: every rank's writes plus the headers tile every file exactly
// (for one trainer, FSDP x EP and HSDP meshes, files split or not), and a list with a gap or an
// overlap is refused naming the file.

#include "checkpoint/ranges.h"
#include "common/error.h"
#include "layout/registry.h"

#include <gtest/gtest.h>

namespace weightsync::checkpoint {
namespace {

std::vector<HashedRange> everyWrite(const FileLayout &files, const planner::Plan &plan) {
    std::vector<HashedRange> out;
    for (uint32_t f = 0; f < files.files.size(); ++f) {
        out.push_back({f, 0, static_cast<int64_t>(files.files[f].header.size()), 0});
    }
    for (const planner::RankPlan &rp : plan.ranks) {
        for (const planner::Write &w : rp.writes) out.push_back(writeRange(files, w));
    }
    return out;
}

TEST(CheckpointRanges, WritesAndHeadersTileEveryFile) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    for (const planner::TrainerMesh mesh :
         {planner::TrainerMesh{1, 1, 1}, planner::TrainerMesh{1, 4, 2},
          planner::TrainerMesh{2, 2, 1}}) {
        for (const int64_t file_bytes : {int64_t{200'000}, int64_t{1} << 40}) {
            const FileLayout files = fileLayout(l, file_bytes);
            const planner::Plan plan = planner::buildPlan(l, mesh, checkpointFleet());
            const auto tiled = tileRanges(files, everyWrite(files, plan));
            ASSERT_EQ(tiled.size(), files.files.size());
            for (size_t f = 0; f < tiled.size(); ++f) {
                int64_t at = 0;
                for (const HashedRange &r : tiled[f]) {
                    EXPECT_EQ(r.offset, at);
                    at += r.bytes;
                }
                EXPECT_EQ(at, files.files[f].size) << "ranks " << mesh.ranks();
            }
        }
    }
}

TEST(CheckpointRanges, AGapOrAnOverlapIsRefusedNamingTheFile) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const FileLayout files = fileLayout(l, int64_t{1} << 40);
    const planner::Plan plan = planner::buildPlan(l, {1, 2, 2}, checkpointFleet());
    const auto refused = [&](const std::vector<HashedRange> &ranges, const std::string &needle) {
        try {
            (void)tileRanges(files, ranges);
            ADD_FAILURE() << "accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), Errc::kProtocol);
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(files.files[0].name), std::string::npos);
        }
    };
    auto ranges = everyWrite(files, plan);
    auto gap = ranges;
    gap.pop_back();  // a rank's last write missing
    refused(gap, "gap");
    auto overlap = ranges;
    overlap.push_back(overlap.back());  // sent twice
    refused(overlap, "overlap");
    auto header = ranges;
    header.erase(header.begin());  // no header
    refused(header, "gap");
    auto bad = ranges;
    bad.push_back({7, 0, 1, 0});
    EXPECT_THROW((void)tileRanges(files, bad), Error);
}

}  // namespace
}  // namespace weightsync::checkpoint
