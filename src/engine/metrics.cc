#include "engine/metrics.h"

#include "common/json.h"

namespace weightsync::engine {

nlohmann::json PushMetrics::toJson() const {
    return {{"version", version},
            {"rank", rank},
            {"generate_s", generate_seconds},
            {"pause_s", pause_seconds},
            {"convert_s", convert_seconds},
            {"post_s", post_seconds},
            {"drain_s", drain_seconds},
            {"finalize_s", finalize_seconds},
            {"barrier_s", barrier_seconds},
            {"total_s", total_seconds},
            {"wire_bytes", wire_bytes},
            {"writes", writes}};
}

PushMetrics PushMetrics::fromJson(const nlohmann::json &j) {
    PushMetrics m;
    m.version = jsonInteger<uint64_t>(j.at("version"), "version");
    m.rank = jsonInteger<int>(j.at("rank"), "rank");
    m.generate_seconds = j.at("generate_s").get<double>();
    m.pause_seconds = j.at("pause_s").get<double>();
    m.convert_seconds = j.at("convert_s").get<double>();
    m.post_seconds = j.at("post_s").get<double>();
    m.drain_seconds = j.at("drain_s").get<double>();
    m.finalize_seconds = j.at("finalize_s").get<double>();
    m.barrier_seconds = j.at("barrier_s").get<double>();
    m.total_seconds = j.at("total_s").get<double>();
    m.wire_bytes = jsonInteger<int64_t>(j.at("wire_bytes"), "wire_bytes");
    m.writes = jsonInteger<int64_t>(j.at("writes"), "writes");
    return m;
}

}  // namespace weightsync::engine
