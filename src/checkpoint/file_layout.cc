#include "checkpoint/file_layout.h"

#include "common/error.h"
#include "planner/geometry.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace weightsync::checkpoint {

namespace {

constexpr int64_t kHeaderAlign = 8;

/// 8-byte little-endian length, then the JSON padded with spaces to a multiple of 8.
std::string encodeHeader(const nlohmann::json &header) {
    std::string text = header.dump();
    const size_t padded = (text.size() + kHeaderAlign - 1) / kHeaderAlign * kHeaderAlign;
    text.resize(padded, ' ');
    std::string out(8, '\0');
    auto n = static_cast<uint64_t>(text.size());
    for (char &c : out) {
        c = static_cast<char>(n & 0xff);
        n >>= 8;
    }
    return out + text;
}

}  // namespace

std::string_view safetensorsDtype(DType dtype) {
    switch (dtype) {
        case DType::kBF16: return "BF16";
        case DType::kF32: return "F32";
        case DType::kF8E4M3: return "F8_E4M3";
        case DType::kU8: return "U8";
    }
    fail(Errc::kInternal, "unknown dtype {}", static_cast<int>(dtype));
}

nlohmann::json FileLayout::index() const {
    nlohmann::json map = nlohmann::json::object();
    for (const TensorEntry &t : tensors) map[t.name] = files[t.file].name;
    return {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", map}};
}

FileLayout fileLayout(const layout::Layout &layout, int64_t max_file_bytes) {
    check(max_file_bytes >= 1, Errc::kInvalidArgument,
          "checkpoint: the largest file must be >= 1 byte, got {}", max_file_bytes);
    FileLayout out;
    // Files in layout order: a new file when the next tensor would overflow a non-empty one.
    std::vector<std::vector<uint32_t>> groups;
    int64_t in_file = 0;
    for (size_t i = 0; i < layout.dests().size(); ++i) {
        const layout::DestTensor &d = layout.dests()[i];
        const int64_t bytes = numel(d.shape) * static_cast<int64_t>(dtypeSize(d.dtype));
        if (groups.empty() || (in_file > 0 && in_file + bytes > max_file_bytes)) {
            groups.emplace_back();
            in_file = 0;
        }
        groups.back().push_back(static_cast<uint32_t>(i));
        in_file += bytes;
        out.tensors.push_back({d.name, d.dtype, d.shape, 0, 0, bytes});
        out.total_bytes += bytes;
    }
    for (size_t f = 0; f < groups.size(); ++f) {
        std::vector<uint32_t> order = groups[f];
        std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
            return dtypeSize(out.tensors[a].dtype) > dtypeSize(out.tensors[b].dtype);
        });
        nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
        int64_t data = 0;
        for (const uint32_t i : order) {
            TensorEntry &t = out.tensors[i];
            t.file = static_cast<uint32_t>(f);
            t.offset = data;  // relative to the data start until the header is known
            header[t.name] = {{"dtype", safetensorsDtype(t.dtype)},
                              {"shape", t.shape},
                              {"data_offsets", {data, data + t.bytes}}};
            data += t.bytes;
        }
        CheckpointFile file;
        file.name = fmt::format("model-{:05d}-of-{:05d}.safetensors", f + 1, groups.size());
        file.header = encodeHeader(header);
        file.size = static_cast<int64_t>(file.header.size()) + data;
        file.tensors = std::move(order);
        for (const uint32_t i : file.tensors) {
            out.tensors[i].offset += static_cast<int64_t>(file.header.size());
        }
        out.files.push_back(std::move(file));
    }
    return out;
}

planner::Fleet checkpointFleet() {
    planner::Fleet fleet;
    fleet.engines.push_back(planner::EngineSpec{1, 1, 1, {}});
    return fleet;
}

planner::PeerSpec checkpointPeer(const layout::Layout &layout) {
    return planner::fleetPeers(checkpointFleet(), planner::layoutExperts(layout)).front();
}

std::string stepDirName(uint64_t version) {
    return fmt::format("step_{}", version);
}

uint64_t parseStepDirName(std::string_view name) {
    constexpr std::string_view kPrefix = "step_";
    if (!name.starts_with(kPrefix) || name.size() == kPrefix.size()) return 0;
    const std::string_view digits = name.substr(kPrefix.size());
    if (digits.front() == '0') return 0;  // one spelling per version
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return 0;
    return v;
}

}  // namespace weightsync::checkpoint
