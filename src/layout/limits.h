#pragma once
// The largest inputs weightsync accepts, in one place (documented in docs/layout-format.md).
// Every layout, topology and job spec is checked against them before anything is allocated or
// expanded, so that a few hostile bytes (a layer count of 10^6, a dimension of 2^62) fail at
// once with a clear error instead of exhausting memory, overflowing, or looping.
//
// They are far above any model or cluster in use (GLM-5: 78 layers, 256 experts, largest
// dimension 154880, about 1.5 TB of bf16 weights).

#include <cstdint>

namespace weightsync::limits {

/// Layers of a built-in model (--layers) or of a layout file's templates (num_layers, layers).
inline constexpr int64_t kMaxLayers = 4096;
/// Any one dimension of a tensor shape.
inline constexpr int64_t kMaxDim = int64_t{1} << 24;
/// Dimensions of a tensor shape (canonical views are at most [G, R, C]).
inline constexpr int64_t kMaxRank = 3;
/// Bytes of one tensor (all experts, unsharded): 1 TiB.
inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 40;
/// Bytes of all trainer tensors, and of all destination tensors, of one layout: 16 TiB.
inline constexpr int64_t kMaxLayoutBytes = int64_t{1} << 44;
/// Tensors on either side of a layout, after template expansion.
inline constexpr int64_t kMaxTensors = int64_t{1} << 18;
/// Routed experts of a model (the leading dimension of expert tensors).
inline constexpr int64_t kMaxExperts = 4096;
/// Characters of a tensor name.
inline constexpr int64_t kMaxNameLength = 1024;
/// Bytes of a layout file.
inline constexpr int64_t kMaxLayoutFileBytes = int64_t{64} << 20;
/// Nesting depth of a layout or job-spec JSON document (a layout needs 4).
inline constexpr int kMaxJsonDepth = 32;

/// Trainer ranks of a job (HSDP replicas x FSDP shards).
inline constexpr int64_t kMaxTrainerRanks = 16384;
/// Inference ranks of a job, over all engines.
inline constexpr int64_t kMaxInferenceRanks = 16384;
/// Each of (inference ranks x destination tensors), (trainer ranks x conversions),
/// (inference ranks x experts) and (trainer ranks x inference ranks): bounds the planner's
/// tables.
inline constexpr int64_t kMaxPlanCells = int64_t{1} << 24;

/// Weight versions a job may push (JobSpec::steps, demo --steps).
inline constexpr int64_t kMaxSteps = int64_t{1} << 30;
/// Any timeout, in seconds (one week): larger values overflow no clock but are surely typos.
inline constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600.0;
/// GPU ordinals in a job's GPU lists.
inline constexpr int64_t kMaxGpuOrdinal = 1023;

}  // namespace weightsync::limits
