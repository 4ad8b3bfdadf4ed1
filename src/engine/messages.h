#pragma once
// The payloads agents exchange through the store (JSON), and the checks a trainer applies to what
// the inference side publishes: every tensor's name, shape, dtype, chunk count and byte size is
// compared on both sides before anything is written, and any disagreement fails init with a
// message naming tensor and peer (a mismatch only logged would become writes of the wrong size at
// the wrong offsets).

#include "layout/layout.h"
#include "planner/geometry.h"
#include "planner/topology.h"
#include "transport/transport.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace weightsync::engine {

/// A trainer rank's hello: every trainer checks that all of them run the same layout and mesh.
struct TrainerHello {
    std::string fingerprint;
    planner::TrainerMesh mesh;

    [[nodiscard]] nlohmann::json toJson() const;
    static TrainerHello fromJson(const nlohmann::json &j);
};

struct InferenceHello {
    planner::PeerSpec peer;
    std::string fingerprint;
    std::vector<planner::LocalTensor> params;  // the rank's destination tensors as allocated

    [[nodiscard]] nlohmann::json toJson() const;
    static InferenceHello fromJson(const nlohmann::json &j);
};

/// A contiguous piece of a tensor inside one registered region.
struct Chunk {
    uint32_t region = 0;  // index into MemoryRecord::regions
    uint64_t offset = 0;  // bytes from the region's start
    uint64_t bytes = 0;
};

struct TensorMemory {
    std::string name;
    int64_t bytes = 0;
    std::vector<Chunk> chunks;  // explicit chunk list; the plan writes each tensor as one chunk
};

/// One transport a rank can be written through: its address and the rank's regions as that
/// backend registered them (the same regions, in the same order, for every endpoint).
struct Endpoint {
    std::string backend;
    std::string address;  // transport address of the rank (raw bytes)
    std::vector<transport::RemoteDescriptor> regions;
};

/// A rank's registered memory: the regions (registered once each, per transport) and where every
/// destination tensor lives inside them. Tensors are sub-ranges: no registration per tensor.
struct MemoryRecord {
    std::string host;  // hostIdentity() of the rank's machine
    uint64_t generation = 0;
    /// Copies of the tensors a writer may be told to write (Paused::target): copy k of a tensor
    /// is its chunk in region `chunk.region + k * regions / copies` of every endpoint (2 for a
    /// rank that flips: its live and staging arenas, which trade roles).
    uint32_t copies = 1;
    std::vector<Endpoint> endpoints;
    std::vector<TensorMemory> tensors;

    [[nodiscard]] const Endpoint *endpoint(const std::string &backend) const;

    [[nodiscard]] nlohmann::json toJson() const;
    static MemoryRecord fromJson(const nlohmann::json &j);
};

/// Checks a peer's hello against the trainer's layout and the planner's view of that peer.
void validateHello(const layout::Layout &layout, const InferenceHello &hello,
                   const planner::PeerSpec &planned);
/// Checks every tensor's chunk list against every endpoint: one chunk per tensor, its size, and
/// that it lies inside its region, in every copy.
void validateMemory(const std::vector<planner::LocalTensor> &expected, const MemoryRecord &record,
                    const std::string &peer);

nlohmann::json peerToJson(const planner::PeerSpec &peer);
planner::PeerSpec peerFromJson(const nlohmann::json &j);

}  // namespace weightsync::engine
