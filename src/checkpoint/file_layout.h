#pragma once
// How one weight version lies on disk as a Hugging Face checkpoint: every destination tensor of
// the layout whole (unsharded, fused as the layout fuses it), in safetensors files of at most
// `max_file_bytes` each (`model-0000k-of-0000K.safetensors`), with a
// `model.safetensors.index.json`. A pure, deterministic function of the layout: every trainer
// rank computes the same files, headers and offsets, and every inference rank finds its bytes.
//
// safetensors: 8-byte little-endian header length, a JSON header (per tensor: dtype, shape,
// data_offsets relative to the data start; the header padded with spaces to 8 bytes), then the
// data, with no holes. Inside a file, tensors are ordered by element size (largest first, then
// layout order), so that every tensor starts aligned to its element size.

#include "layout/layout.h"
#include "planner/topology.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::checkpoint {

/// The HF file names.
inline constexpr std::string_view kIndexName = "model.safetensors.index.json";
inline constexpr std::string_view kManifestName = "weightsync-manifest.json";
/// The Hugging Face config a job may ask to be written beside the tensors.
inline constexpr std::string_view kConfigName = "config.json";
/// Default largest file (a tensor larger than this gets a file of its own).
inline constexpr int64_t kDefaultMaxFileBytes = int64_t{4} << 30;

/// One destination tensor in the checkpoint.
struct TensorEntry {
    std::string name;
    DType dtype = DType::kBF16;
    Shape shape;         // global (unsharded) shape
    uint32_t file = 0;   // index into FileLayout::files
    int64_t offset = 0;  // byte offset of the tensor in its file (header included)
    int64_t bytes = 0;
};

/// One safetensors file.
struct CheckpointFile {
    std::string name;               // model-00001-of-00003.safetensors
    std::string header;             // the first header.size() bytes of the file
    int64_t size = 0;               // header + data
    std::vector<uint32_t> tensors;  // dests in the file, in file order
};

struct FileLayout {
    std::vector<CheckpointFile> files;
    std::vector<TensorEntry> tensors;  // in layout.dests() order
    int64_t total_bytes = 0;           // tensor bytes (the index's metadata.total_size)

    /// model.safetensors.index.json: {"metadata": {"total_size"}, "weight_map": {name: file}}.
    [[nodiscard]] nlohmann::json index() const;
};

/// The safetensors dtype name: "BF16", "F32", "F8_E4M3", "U8".
std::string_view safetensorsDtype(DType dtype);

/// The checkpoint of `layout`, in files of at most `max_file_bytes` of tensor data (>= 1).
/// Throws Errc::kInvalidArgument for a bad size.
FileLayout fileLayout(const layout::Layout &layout, int64_t max_file_bytes);

/// The fleet the trainers plan against when they write a checkpoint: one engine of one rank,
/// no TP, no EP, so that the plan's writes carry every destination tensor whole.
planner::Fleet checkpointFleet();
/// That fleet's one rank for `layout` (every expert, in order).
planner::PeerSpec checkpointPeer(const layout::Layout &layout);

/// "step_<version>": the directory of one version under the root.
std::string stepDirName(uint64_t version);
/// The version of a step directory's name; 0 for any other name.
uint64_t parseStepDirName(std::string_view name);

}  // namespace weightsync::checkpoint
