#pragma once
// Who holds what: the trainer mesh (HSDP replicas x FSDP shards, expert parallelism inside FSDP)
// and the inference fleet (engines of ranks, each with a TP split and an expert map).

#include <cstdint>
#include <string>
#include <vector>

namespace weightsync::planner {

/// Trainer ranks are numbered replica-major: global rank = replica * fsdp + fsdp_index.
/// Inside a replica, expert parallelism is the inner mesh dim (torchtitan's order):
/// ep_rank = fsdp_index % ep, shard-within-EP-group = fsdp_index / ep.
struct TrainerMesh {
    int replicas = 1;  // HSDP replica count; only replica 0 writes
    int fsdp = 1;      // FSDP shard degree inside a replica
    int ep = 1;        // expert-parallel degree; divides fsdp

    [[nodiscard]] int ranks() const { return replicas * fsdp; }
    [[nodiscard]] int fsdpIndex(int rank) const { return rank % fsdp; }
    [[nodiscard]] int replica(int rank) const { return rank / fsdp; }
    [[nodiscard]] bool writes(int rank) const { return replica(rank) == 0; }
    /// First global expert a rank owns and how many (experts split evenly over fsdp).
    [[nodiscard]] int64_t firstExpert(int rank, int64_t experts) const;
    [[nodiscard]] int64_t expertsPerRank(int64_t experts) const { return experts / fsdp; }
    void validate() const;
};

/// One inference engine: `ranks` GPUs; non-experts TP-split over `tp` and replicated across the
/// ranks / tp data-parallel groups; experts either spread over all ranks (ep == ranks) or
/// present on every rank and TP-split like the rest (ep == 1).
struct EngineSpec {
    int ranks = 1;
    int tp = 1;
    int ep = 1;
    /// Optional explicit expert maps (global ids in local order), one per rank; overrides the
    /// linear placement (e.g. EPLB). Empty = linear.
    std::vector<std::vector<int64_t>> expert_maps;
};

struct Fleet {
    std::vector<EngineSpec> engines;
    void validate() const;
};

/// One inference rank as the planner sees it.
struct PeerSpec {
    std::string name;  // "e<engine>r<rank>"
    int engine = 0;
    int rank = 0;
    int tp_rank = 0;
    int tp = 1;
    bool expert_parallel = false;  // experts spread over ranks (not TP-split)
    std::vector<int64_t> experts;  // global expert ids in local order
};

/// Flattens a fleet into peers (engine-major) for a model with `experts` routed experts.
std::vector<PeerSpec> fleetPeers(const Fleet &fleet, int64_t experts);

}  // namespace weightsync::planner
