#pragma once
// Per push and per rank timings, measured phase by phase: real wire bytes, not slot bytes; the
// writes actually posted, counted as they are posted; posting and draining (completion at the
// targets) timed separately, so that neither hides inside the other.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>

namespace weightsync::engine {

/// Seconds from `start` until now, on the steady clock every phase is timed with.
inline double secondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct PushMetrics {
    uint64_t version = 0;
    int rank = 0;
    double generate_seconds = 0;  // the synthetic optimizer step (not part of the update)
    double pause_seconds = 0;     // waiting for every receiver to pause
    double convert_seconds = 0;   // conversion + FP8 quantization into the slots
    double post_seconds = 0;      // posting writes (includes back-pressure waits)
    double drain_seconds = 0;     // flush: every posted write complete at its target (filesystem:
                                  // fsync)
    double finalize_seconds = 0;  // filesystem, rank 0: shared chunks hashed, files renamed, the
                                  // manifest written (after every rank's drain)
    double barrier_seconds = 0;   // until every receiver runs the new version
    double total_seconds = 0;     // pause .. barrier, the time inference is paused for
    int64_t wire_bytes = 0;
    int64_t writes = 0;

    [[nodiscard]] nlohmann::json toJson() const;
    static PushMetrics fromJson(const nlohmann::json &j);
};

}  // namespace weightsync::engine
