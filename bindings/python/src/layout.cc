// Layouts, topologies and the planner's per-rank views: what a trainer rank must hold of each
// source tensor, which destination tensors an inference rank holds, and the reference converter
// used by the bit-exact checks.

#include "bindings.h"
#include "tensor_sources.h"

#include "common/error.h"
#include "convert/reference.h"
#include "convert/synthetic.h"
#include "layout/derive.h"
#include "layout/hf_config.h"
#include "layout/json_fields.h"
#include "layout/json_layout.h"
#include "layout/registry.h"
#include "layout/rules.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "planner/topology.h"

#include <pybind11/stl.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace weightsync::python {

namespace {

using layout::Layout;

/// (name, shape, dtype name) triples as the derivation's parameter list.
using ParamTuple = std::tuple<std::string, Shape, std::string>;

std::vector<layout::ParamInfo> paramList(const std::vector<ParamTuple> &params,
                                         std::string_view side) {
    std::vector<layout::ParamInfo> out;
    out.reserve(params.size());
    for (const auto &[name, shape, dtype] : params) {
        try {
            out.push_back({name, shape, parseDType(dtype)});
        } catch (const Error &e) {
            fail(Errc::kInvalidArgument, "{} tensor '{}': {}", side, name, e.what());
        }
    }
    return out;
}

std::vector<ParamTuple> paramTuples(const std::vector<layout::ParamInfo> &params) {
    std::vector<ParamTuple> out;
    for (const layout::ParamInfo &p : params) {
        out.emplace_back(p.name, p.shape, dtypeString(p.dtype));
    }
    return out;
}

layout::HfModel hfModelOf(const std::string &config_text) {
    return layout::hfModel(jsonfields::parse(config_text, "HF config"));
}

py::bytes toBytes(const std::vector<std::byte> &data) {
    return {reinterpret_cast<const char *>(data.data()), data.size()};
}

/// The peer-local destination tensors of `peer`, computed by the reference converter from the
/// given source generator: name -> bytes.
py::dict referenceDict(const Layout &layout, const planner::PeerSpec &peer,
                       const convert::SourceGenerator &generator) {
    std::vector<std::vector<std::byte>> out;
    {
        py::gil_scoped_release release;
        out = convert::referenceLocalTensors(layout, peer, generator);
    }
    py::dict result;
    for (size_t i = 0; i < out.size(); ++i)
        result[py::str(layout.dests()[i].name)] = toBytes(out[i]);
    return result;
}

}  // namespace

void registerLayout(py::module_ &m) {
    py::class_<layout::SourceTensor>(m, "SourceTensor",
                                     "A trainer-side tensor of a layout (global shape).")
        .def_readonly("name", &layout::SourceTensor::name)
        .def_readonly("shape", &layout::SourceTensor::shape)
        .def_property_readonly("dtype",
                               [](const layout::SourceTensor &s) { return dtypeString(s.dtype); })
        .def_property_readonly("expert",
                               [](const layout::SourceTensor &s) { return s.expert_dim == 0; })
        .def_property_readonly("fsdp_sharded",
                               [](const layout::SourceTensor &s) { return s.fsdp_dim == 0; })
        .def("__repr__", [](const layout::SourceTensor &s) {
            return fmt::format("SourceTensor('{}', {}, {})", s.name, shapeString(s.shape),
                               dtypeName(s.dtype));
        });

    py::class_<layout::DestTensor>(m, "DestTensor",
                                   "An inference-side tensor of a layout (global shape).")
        .def_readonly("name", &layout::DestTensor::name)
        .def_readonly("shape", &layout::DestTensor::shape)
        .def_property_readonly("dtype",
                               [](const layout::DestTensor &d) { return dtypeString(d.dtype); })
        .def("__repr__", [](const layout::DestTensor &d) {
            return fmt::format("DestTensor('{}', {}, {})", d.name, shapeString(d.shape),
                               dtypeName(d.dtype));
        });

    py::class_<Layout, std::shared_ptr<Layout>>(m, "Layout",
                                                "A model layout: trainer sources, inference "
                                                "destinations and the conversions between them.")
        .def_property_readonly("name", &Layout::name)
        .def_property_readonly("fingerprint", &Layout::fingerprint)
        .def_property_readonly("sources", &Layout::sources)
        .def_property_readonly("dests", &Layout::dests)
        .def_property_readonly("experts", [](const Layout &l) { return planner::layoutExperts(l); })
        .def_property_readonly("source_bytes", &Layout::sourceBytes)
        .def_property_readonly("dest_bytes", &Layout::destBytes)
        .def("source", &Layout::source, py::arg("name"), py::return_value_policy::copy)
        .def("dest", &Layout::dest, py::arg("name"), py::return_value_policy::copy)
        .def("has_source", &Layout::hasSource, py::arg("name"))
        .def("has_dest", &Layout::hasDest, py::arg("name"))
        .def("to_json", [](const Layout &l) { return layout::toJson(l).dump(); })
        .def("__repr__", [](const Layout &l) {
            return fmt::format("Layout('{}', {} sources, {} destinations)", l.name(),
                               l.sources().size(), l.dests().size());
        });

    m.def(
        "resolve_layout",
        [](const std::string &model, std::optional<int64_t> layers) {
            return std::make_shared<Layout>(layout::resolveLayout(model, layers));
        },
        py::arg("model"), py::arg("layers") = py::none(),
        "A built-in layout by name (glm5, glm5-tiny, qwen3-8b, ...) or a layout JSON file.");
    m.def(
        "layout_from_json",
        [](const std::string &text) {
            return std::make_shared<Layout>(layout::layoutFromJson(nlohmann::json::parse(text)));
        },
        py::arg("text"));
    m.def("builtin_layouts", &layout::builtinLayoutNames);
    m.def("rule_sets", &layout::ruleSetNames, "The rule sets derive_layout knows.");
    m.def(
        "derive_layout",
        [](const std::vector<ParamTuple> &trainer, const std::vector<ParamTuple> &inference,
           const std::string &rules, const std::string &name) {
            const auto t = paramList(trainer, "trainer");
            const auto i = paramList(inference, "inference");
            return std::make_shared<Layout>(layout::deriveLayout(t, i, rules, name));
        },
        py::arg("trainer"), py::arg("inference"), py::arg("rules"), py::arg("name"),
        "The layout from two parameter lists of (name, shape, dtype) under a rule set.");
    m.def(
        "canonical_order",
        [](const Layout &l, const std::string &name) {
            return std::make_shared<Layout>(layout::canonicalOrder(l, name));
        },
        py::arg("layout"), py::arg("name") = "",
        "The layout with its entries in the canonical order of derived layouts.");
    m.def(
        "rule_set_tables",
        [](const std::string &name) {
            const layout::rules::RuleSet &r = layout::rules::ruleSet(name);
            py::dict fusions;
            for (const auto &f : r.fusions) fusions[py::str(f.fused)] = f.parts;
            py::dict experts;
            for (const auto &t : r.experts) {
                py::dict e;
                e["sources"] = t.sources;
                e["per_expert"] = t.per_expert;
                e["tp"] = std::string(layout::tpSplitName(t.tp));
                experts[py::str(t.dest)] = e;
            }
            py::dict out;
            out["fusions"] = fusions;
            out["experts"] = experts;
            out["expert_containers"] = r.expert_containers;
            out["rows_modules"] = r.rows_modules;
            out["cols_modules"] = r.cols_modules;
            return out;
        },
        py::arg("name"), "A rule set's tables (for the checks against the engines' own code).");
    m.def("hf_architectures", &layout::hfArchitectures);
    m.def(
        "hf_parameters",
        [](const std::string &config_text, const std::string &rules) {
            const layout::HfModel model = hfModelOf(config_text);
            return paramTuples(rules.empty() ? layout::hfTrainerParams(model)
                                             : layout::hfTargetParams(model, rules));
        },
        py::arg("config"), py::arg("rules") = "",
        "(name, shape, dtype) of a HF config.json's model as transformers holds it (rules "
        "empty), or as the engine of a rule set holds it.");
    m.def(
        "derive_from_hf",
        [](const std::string &config_text, const std::string &rules, const std::string &name) {
            return std::make_shared<Layout>(
                layout::deriveFromHf(hfModelOf(config_text), rules, name));
        },
        py::arg("config"), py::arg("rules"), py::arg("name"));

    py::class_<planner::TrainerMesh>(m, "TrainerMesh",
                                     "Trainer ranks: HSDP replicas x FSDP shards, EP inside FSDP.")
        .def(py::init([](int replicas, int fsdp, int ep) {
                 planner::TrainerMesh mesh{replicas, fsdp, ep};
                 mesh.validate();
                 return mesh;
             }),
             py::kw_only(), py::arg("replicas") = 1, py::arg("fsdp") = 1, py::arg("ep") = 1)
        .def_readwrite("replicas", &planner::TrainerMesh::replicas)
        .def_readwrite("fsdp", &planner::TrainerMesh::fsdp)
        .def_readwrite("ep", &planner::TrainerMesh::ep)
        .def_property_readonly("ranks", &planner::TrainerMesh::ranks)
        .def("__repr__", [](const planner::TrainerMesh &t) {
            return fmt::format("TrainerMesh(replicas={}, fsdp={}, ep={})", t.replicas, t.fsdp,
                               t.ep);
        });

    py::class_<planner::EngineSpec>(m, "EngineSpec",
                                    "One inference engine: ranks, TP degree, EP (1 or = ranks).")
        .def(py::init([](int ranks, int tp, int ep, std::vector<std::vector<int64_t>> maps) {
                 return planner::EngineSpec{ranks, tp, ep, std::move(maps)};
             }),
             py::kw_only(), py::arg("ranks") = 1, py::arg("tp") = 1, py::arg("ep") = 1,
             py::arg("expert_maps") = std::vector<std::vector<int64_t>>{})
        .def_readwrite("ranks", &planner::EngineSpec::ranks)
        .def_readwrite("tp", &planner::EngineSpec::tp)
        .def_readwrite("ep", &planner::EngineSpec::ep)
        .def_readwrite("expert_maps", &planner::EngineSpec::expert_maps)
        .def("__repr__", [](const planner::EngineSpec &e) {
            return fmt::format("EngineSpec(ranks={}, tp={}, ep={})", e.ranks, e.tp, e.ep);
        });

    py::class_<planner::PeerSpec>(m, "PeerSpec", "One inference rank as the planner sees it.")
        .def_readonly("name", &planner::PeerSpec::name)
        .def_readonly("engine", &planner::PeerSpec::engine)
        .def_readonly("rank", &planner::PeerSpec::rank)
        .def_readonly("tp_rank", &planner::PeerSpec::tp_rank)
        .def_readonly("tp", &planner::PeerSpec::tp)
        .def_readonly("expert_parallel", &planner::PeerSpec::expert_parallel)
        .def_readonly("experts", &planner::PeerSpec::experts)
        .def("__repr__", [](const planner::PeerSpec &p) {
            return fmt::format("PeerSpec('{}', tp {}/{}, {} experts)", p.name, p.tp_rank, p.tp,
                               p.experts.size());
        });

    py::class_<planner::LocalTensor>(m, "LocalTensor",
                                     "A destination tensor as one inference rank allocates it.")
        .def_readonly("name", &planner::LocalTensor::name)
        .def_readonly("shape", &planner::LocalTensor::shape)
        .def_property_readonly("dtype",
                               [](const planner::LocalTensor &t) { return dtypeString(t.dtype); })
        .def_readonly("bytes", &planner::LocalTensor::bytes)
        .def("__repr__", [](const planner::LocalTensor &t) {
            return fmt::format("LocalTensor('{}', {}, {})", t.name, shapeString(t.shape),
                               dtypeName(t.dtype));
        });

    m.def(
        "fleet_peers",
        [](const std::vector<planner::EngineSpec> &engines, int64_t experts) {
            return planner::fleetPeers(planner::Fleet{engines}, experts);
        },
        py::arg("engines"), py::arg("experts"), "Every inference rank of a fleet, engine-major.");
    m.def("local_tensors", &planner::localTensors, py::arg("layout"), py::arg("peer"),
          "The destination tensors (layout order) as `peer` holds them.");
    m.def(
        "trainer_shard_box",
        [](const Layout &layout, const std::string &name, const planner::TrainerMesh &mesh,
           int rank) {
            const convert::ShardBox b = convert::trainerShardBox(
                layout, static_cast<uint32_t>(layout.sourceIndex(name)), mesh, rank);
            return py::make_tuple(b.g0, b.groups, b.r0, b.rows);
        },
        py::arg("layout"), py::arg("name"), py::arg("mesh"), py::arg("rank"),
        "(first expert, experts, first row, rows) of source `name` that trainer `rank` owns.");
    m.def(
        "planned_gathers",
        [](const Layout &layout, const planner::TrainerMesh &mesh,
           const std::vector<planner::EngineSpec> &engines, int64_t gather_threshold_bytes) {
            planner::PlannerOptions options;
            options.gather_threshold_bytes = gather_threshold_bytes;
            const planner::Plan plan =
                planner::buildPlan(layout, mesh, planner::Fleet{engines}, options);
            std::vector<std::vector<std::string>> out;
            for (const planner::RankPlan &rp : plan.ranks) {
                std::vector<std::string> names;
                for (uint32_t s : rp.full_sources) names.push_back(layout.sources()[s].name);
                out.push_back(std::move(names));
            }
            return out;
        },
        py::arg("layout"), py::arg("mesh"), py::arg("engines"), py::arg("gather_threshold_bytes"),
        "Per trainer rank, the sources the plan needs whole on that rank (FSDP full_tensor()).");

    m.def(
        "synthetic_source",
        [](const Layout &layout, const std::string &name, uint64_t seed, uint64_t version) {
            const uint32_t index = static_cast<uint32_t>(layout.sourceIndex(name));
            const layout::SourceTensor &s = layout.sources()[index];
            const layout::Extent3 e = layout::sourceExtent(s);
            std::vector<std::byte> out(static_cast<size_t>(e.numel()) * dtypeSize(s.dtype));
            convert::syntheticFill(layout, index, seed, version, 0, e.g, 0, e.r, out.data());
            return toBytes(out);
        },
        py::arg("layout"), py::arg("name"), py::arg("seed"), py::arg("version"),
        "The whole synthetic trainer tensor of a job with this seed at this version (bytes).");
    m.def(
        "reference_synthetic",
        [](const Layout &layout, const planner::PeerSpec &peer, uint64_t seed, uint64_t version) {
            return referenceDict(layout, peer, convert::SyntheticGenerator(layout, seed, version));
        },
        py::arg("layout"), py::arg("peer"), py::arg("seed"), py::arg("version"),
        "Reference destination bytes of `peer` for the synthetic weights of (seed, version).");
    m.def(
        "reference_tensors",
        [](const Layout &layout, const planner::PeerSpec &peer, const py::dict &sources) {
            TensorGenerator generator(layout);
            for (const auto &[key, value] : sources) {
                const auto t = value.cast<std::tuple<uintptr_t, std::string, Shape>>();
                generator.set(key.cast<std::string>(), std::get<0>(t), parseDType(std::get<1>(t)),
                              std::get<2>(t));
            }
            generator.checkComplete();
            return referenceDict(layout, peer, generator);
        },
        py::arg("layout"), py::arg("peer"), py::arg("sources"),
        "Reference destination bytes of `peer` converted from whole host tensors: sources maps "
        "every source name to (data pointer, dtype, shape) of a dense tensor.");
}

}  // namespace weightsync::python
