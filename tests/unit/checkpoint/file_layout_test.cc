// The checkpoint's files: safetensors headers that parse back to the layout's tensors, data
// offsets without holes, files within their size, element-aligned tensors, HF names and index.

#include "checkpoint/file_layout.h"
#include "common/error.h"
#include "layout/registry.h"
#include "planner/geometry.h"

#include <gtest/gtest.h>

#include <map>

namespace weightsync::checkpoint {
namespace {

/// The header's JSON, read back as a safetensors reader does.
nlohmann::json parseHeader(const std::string &header) {
    EXPECT_GE(header.size(), 8u);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | static_cast<uint8_t>(header[static_cast<size_t>(i)]);
    EXPECT_EQ(n + 8, header.size());
    EXPECT_EQ(n % 8, 0u);
    return nlohmann::json::parse(header.substr(8));
}

TEST(FileLayout, HeadersDescribeEveryTensorWithoutHoles) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    for (const int64_t max_bytes : {int64_t{1}, int64_t{200'000}, int64_t{1} << 40}) {
        const FileLayout fl = fileLayout(l, max_bytes);
        ASSERT_EQ(fl.tensors.size(), l.dests().size());
        std::map<std::string, int> seen;
        int64_t total = 0;
        for (size_t f = 0; f < fl.files.size(); ++f) {
            const CheckpointFile &file = fl.files[f];
            EXPECT_EQ(file.name,
                      fmt::format("model-{:05d}-of-{:05d}.safetensors", f + 1, fl.files.size()));
            const nlohmann::json h = parseHeader(file.header);
            EXPECT_EQ(h.at("__metadata__").at("format"), "pt");
            EXPECT_EQ(h.size(), file.tensors.size() + 1);
            int64_t end = 0;
            for (const uint32_t i : file.tensors) {
                const TensorEntry &t = fl.tensors[i];
                const layout::DestTensor &d = l.dests()[i];
                ++seen[t.name];
                EXPECT_EQ(t.name, d.name);
                EXPECT_EQ(t.file, f);
                const nlohmann::json &e = h.at(t.name);
                EXPECT_EQ(e.at("dtype"), safetensorsDtype(d.dtype));
                EXPECT_EQ(e.at("shape").get<Shape>(), d.shape);
                // Contiguous in file order, starting at the data start.
                EXPECT_EQ(e.at("data_offsets")[0].get<int64_t>(), end) << t.name;
                end += t.bytes;
                EXPECT_EQ(e.at("data_offsets")[1].get<int64_t>(), end) << t.name;
                EXPECT_EQ(t.offset, static_cast<int64_t>(file.header.size()) + end - t.bytes);
                EXPECT_EQ((t.offset - static_cast<int64_t>(file.header.size())) %
                              static_cast<int64_t>(dtypeSize(d.dtype)),
                          0)
                    << t.name << " is not aligned to its element size";
            }
            EXPECT_EQ(file.size, static_cast<int64_t>(file.header.size()) + end);
            EXPECT_TRUE(end <= max_bytes || file.tensors.size() == 1)
                << file.name << " holds " << end << " bytes";
            total += end;
        }
        EXPECT_EQ(seen.size(), l.dests().size());
        EXPECT_EQ(total, l.destBytes());
        EXPECT_EQ(fl.total_bytes, l.destBytes());
        if (max_bytes == 1) EXPECT_EQ(fl.files.size(), l.dests().size());
        if (max_bytes == int64_t{1} << 40) EXPECT_EQ(fl.files.size(), 1u);
    }
}

TEST(FileLayout, IndexMapsEveryTensorToItsFile) {
    const layout::Layout l = layout::resolveLayout("qwen3-tiny");
    const FileLayout fl = fileLayout(l, 100'000);
    ASSERT_GT(fl.files.size(), 1u);
    const nlohmann::json index = fl.index();
    EXPECT_EQ(index.at("metadata").at("total_size"), l.destBytes());
    EXPECT_EQ(index.at("weight_map").size(), l.dests().size());
    for (const TensorEntry &t : fl.tensors) {
        EXPECT_EQ(index.at("weight_map").at(t.name), fl.files[t.file].name);
    }
}

TEST(FileLayout, IsDeterministic) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const FileLayout a = fileLayout(l, 300'000);
    const FileLayout b = fileLayout(layout::resolveLayout("glm5-tiny"), 300'000);
    ASSERT_EQ(a.files.size(), b.files.size());
    for (size_t f = 0; f < a.files.size(); ++f) EXPECT_EQ(a.files[f].header, b.files[f].header);
}

TEST(FileLayout, RefusesAnEmptyFileSize) {
    const layout::Layout l = layout::resolveLayout("llama-tiny");
    EXPECT_THROW((void)fileLayout(l, 0), Error);
}

TEST(FileLayout, CheckpointPeerHoldsEverythingWhole) {
    const layout::Layout l = layout::resolveLayout("glm5-tiny");
    const planner::PeerSpec p = checkpointPeer(l);
    EXPECT_EQ(p.tp, 1);
    EXPECT_FALSE(p.expert_parallel);
    EXPECT_EQ(static_cast<int64_t>(p.experts.size()), planner::layoutExperts(l));
}

TEST(FileLayout, StepDirectoryNames) {
    EXPECT_EQ(stepDirName(12), "step_12");
    EXPECT_EQ(parseStepDirName("step_12"), 12u);
    for (const char *bad : {"step_", "step_012", "step_1x", "steps_1", "step_-1", "1",
                            "step_99999999999999999999999"}) {
        EXPECT_EQ(parseStepDirName(bad), 0u) << bad;
    }
}

}  // namespace
}  // namespace weightsync::checkpoint
