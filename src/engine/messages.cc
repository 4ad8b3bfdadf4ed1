#include "engine/messages.h"

#include "common/base64.h"
#include "common/error.h"
#include "common/json.h"

#include <fmt/format.h>

namespace weightsync::engine {

using nlohmann::json;

namespace {

/// j[name] as the integer type T: a float or an out-of-range value is kProtocol, never converted.
template <typename T>
T integer(const json &j, const char *name) {
    return jsonInteger<T>(j.at(name), name);
}

template <typename T>
std::vector<T> integers(const json &j, const char *name) {
    const json &array = j.at(name);
    check(array.is_array(), Errc::kProtocol, "{}: expected an array, got {}", name,
          array.type_name());
    std::vector<T> out;
    out.reserve(array.size());
    for (const json &v : array) out.push_back(jsonInteger<T>(v, name));
    return out;
}

}  // namespace

json peerToJson(const planner::PeerSpec &p) {
    return {{"name", p.name},       {"engine", p.engine}, {"rank", p.rank},
            {"tp_rank", p.tp_rank}, {"tp", p.tp},         {"expert_parallel", p.expert_parallel},
            {"experts", p.experts}};
}

planner::PeerSpec peerFromJson(const json &j) {
    planner::PeerSpec p;
    p.name = j.at("name").get<std::string>();
    p.engine = integer<int>(j, "engine");
    p.rank = integer<int>(j, "rank");
    p.tp_rank = integer<int>(j, "tp_rank");
    p.tp = integer<int>(j, "tp");
    p.expert_parallel = j.at("expert_parallel").get<bool>();
    p.experts = integers<int64_t>(j, "experts");
    return p;
}

json TrainerHello::toJson() const {
    return {{"fingerprint", fingerprint}, {"mesh", {mesh.replicas, mesh.fsdp, mesh.ep}}};
}

TrainerHello TrainerHello::fromJson(const json &j) {
    try {
        TrainerHello h;
        h.fingerprint = j.at("fingerprint").get<std::string>();
        const json &mesh = j.at("mesh");
        check(mesh.is_array() && mesh.size() == 3, Errc::kProtocol,
              "malformed trainer hello: the mesh is not 3 integers");
        h.mesh = {jsonInteger<int>(mesh[0], "trainer hello mesh"),
                  jsonInteger<int>(mesh[1], "trainer hello mesh"),
                  jsonInteger<int>(mesh[2], "trainer hello mesh")};
        return h;
    } catch (const json::exception &e) {
        fail(Errc::kProtocol, "malformed trainer hello: {}", e.what());
    }
}

json InferenceHello::toJson() const {
    json params_json = json::array();
    for (const planner::LocalTensor &t : params) {
        params_json.push_back({{"name", t.name},
                               {"shape", t.shape},
                               {"dtype", dtypeName(t.dtype)},
                               {"bytes", t.bytes}});
    }
    return {{"peer", peerToJson(peer)}, {"fingerprint", fingerprint}, {"params", params_json}};
}

InferenceHello InferenceHello::fromJson(const json &j) {
    try {
        InferenceHello h;
        h.peer = peerFromJson(j.at("peer"));
        h.fingerprint = j.at("fingerprint").get<std::string>();
        for (const json &t : j.at("params")) {
            h.params.push_back({t.at("name").get<std::string>(), integers<int64_t>(t, "shape"),
                                parseDType(t.at("dtype").get<std::string>()),
                                integer<int64_t>(t, "bytes")});
        }
        return h;
    } catch (const json::exception &e) {
        fail(Errc::kProtocol, "malformed inference hello: {}", e.what());
    }
}

json MemoryRecord::toJson() const {
    json endpoints_json = json::array();
    for (const Endpoint &e : endpoints) {
        json regions_json = json::array();
        for (const transport::RemoteDescriptor &d : e.regions) regions_json.push_back(d.toJson());
        endpoints_json.push_back({{"backend", e.backend},
                                  {"address", encodeBase64(e.address)},
                                  {"regions", regions_json}});
    }
    json tensors_json = json::array();
    for (const TensorMemory &t : tensors) {
        json chunks = json::array();
        for (const Chunk &c : t.chunks) chunks.push_back({c.region, c.offset, c.bytes});
        tensors_json.push_back({{"name", t.name}, {"bytes", t.bytes}, {"chunks", chunks}});
    }
    return {{"host", host},
            {"generation", generation},
            {"copies", copies},
            {"endpoints", endpoints_json},
            {"tensors", tensors_json}};
}

const Endpoint *MemoryRecord::endpoint(const std::string &backend) const {
    for (const Endpoint &e : endpoints) {
        if (e.backend == backend) return &e;
    }
    return nullptr;
}

MemoryRecord MemoryRecord::fromJson(const json &j) {
    try {
        MemoryRecord r;
        r.host = j.at("host").get<std::string>();
        r.generation = integer<uint64_t>(j, "generation");
        r.copies = integer<uint32_t>(j, "copies");
        for (const json &e : j.at("endpoints")) {
            Endpoint ep;
            ep.backend = e.at("backend").get<std::string>();
            ep.address = decodeBase64(e.at("address").get<std::string>());
            for (const json &d : e.at("regions")) {
                ep.regions.push_back(transport::RemoteDescriptor::fromJson(d));
            }
            r.endpoints.push_back(std::move(ep));
        }
        for (const json &t : j.at("tensors")) {
            TensorMemory m;
            m.name = t.at("name").get<std::string>();
            m.bytes = integer<int64_t>(t, "bytes");
            for (const json &c : t.at("chunks")) {
                check(c.is_array() && c.size() == 3, Errc::kProtocol,
                      "chunk: expected [region, offset, bytes], got {}", c.type_name());
                m.chunks.push_back({jsonInteger<uint32_t>(c[0], "chunk region"),
                                    jsonInteger<uint64_t>(c[1], "chunk offset"),
                                    jsonInteger<uint64_t>(c[2], "chunk bytes")});
            }
            r.tensors.push_back(std::move(m));
        }
        return r;
    } catch (const json::exception &e) {
        fail(Errc::kProtocol, "malformed memory record: {}", e.what());
    }
}

void validateHello(const layout::Layout &layout, const InferenceHello &hello,
                   const planner::PeerSpec &planned) {
    const std::string &peer = hello.peer.name;
    check(hello.fingerprint == layout.fingerprint(), Errc::kMismatch,
          "inference rank {} serves a different layout (fingerprint {}) than the trainer's '{}' "
          "({})",
          peer, hello.fingerprint, layout.name(), layout.fingerprint());
    check(hello.peer.tp == planned.tp && hello.peer.tp_rank == planned.tp_rank &&
              hello.peer.experts == planned.experts,
          Errc::kMismatch,
          "inference rank {} reports TP {}/{} and {} experts, the job spec implies TP {}/{} and "
          "{} experts",
          peer, hello.peer.tp_rank, hello.peer.tp, hello.peer.experts.size(), planned.tp_rank,
          planned.tp, planned.experts.size());
    const std::vector<planner::LocalTensor> expected = planner::localTensors(layout, planned);
    check(hello.params.size() == expected.size(), Errc::kMismatch,
          "inference rank {} has {} parameters, the layout has {}", peer, hello.params.size(),
          expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        const planner::LocalTensor &got = hello.params[i];
        const planner::LocalTensor &want = expected[i];
        check(got.name == want.name, Errc::kMismatch,
              "inference rank {}: parameter {} is '{}', the layout expects '{}'", peer, i, got.name,
              want.name);
        check(got.shape == want.shape && got.dtype == want.dtype, Errc::kMismatch,
              "inference rank {}: '{}' is {} {}, the layout expects {} {}", peer, got.name,
              shapeString(got.shape), dtypeName(got.dtype), shapeString(want.shape),
              dtypeName(want.dtype));
    }
}

void validateMemory(const std::vector<planner::LocalTensor> &expected, const MemoryRecord &record,
                    const std::string &peer) {
    check(!record.endpoints.empty(), Errc::kMismatch, "inference rank {} offers no transport",
          peer);
    check(record.copies >= 1, Errc::kMismatch, "inference rank {} publishes 0 copies", peer);
    for (const Endpoint &e : record.endpoints) {
        check(e.regions.size() % record.copies == 0, Errc::kMismatch,
              "inference rank {}: {} regions ({}) do not split into its {} copies", peer,
              e.regions.size(), e.backend, record.copies);
    }
    check(record.tensors.size() == expected.size(), Errc::kMismatch,
          "inference rank {} describes {} tensors, the layout has {}", peer, record.tensors.size(),
          expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        const TensorMemory &t = record.tensors[i];
        check(t.name == expected[i].name, Errc::kMismatch,
              "inference rank {}: descriptor {} is for '{}', expected '{}'", peer, i, t.name,
              expected[i].name);
        check(t.chunks.size() == 1, Errc::kMismatch,
              "inference rank {}: '{}' is published in {} chunks, the plan writes it as 1", peer,
              t.name, t.chunks.size());
        const Chunk &c = t.chunks.front();
        check(t.bytes == expected[i].bytes && static_cast<int64_t>(c.bytes) == expected[i].bytes,
              Errc::kMismatch,
              "inference rank {}: '{}' is registered as {} bytes (chunk {}), the plan writes {}",
              peer, t.name, t.bytes, c.bytes, expected[i].bytes);
        for (const Endpoint &e : record.endpoints) {
            const size_t per_copy = e.regions.size() / record.copies;
            check(c.region < per_copy, Errc::kMismatch,
                  "inference rank {}: '{}' names region {} of {} ({}, {} per copy)", peer, t.name,
                  c.region, e.regions.size(), e.backend, per_copy);
            for (size_t k = 0; k < record.copies; ++k) {
                const transport::RemoteDescriptor &d = e.regions[c.region + k * per_copy];
                check(c.offset + c.bytes <= d.length, Errc::kMismatch,
                      "inference rank {}: '{}' [{}, {}) lies outside its {}-byte region (copy {})",
                      peer, t.name, c.offset, c.offset + c.bytes, d.length, k);
                check(d.backend == e.backend, Errc::kMismatch,
                      "inference rank {}: a {} region is published under the {} endpoint", peer,
                      d.backend, e.backend);
            }
        }
    }
}

}  // namespace weightsync::engine
