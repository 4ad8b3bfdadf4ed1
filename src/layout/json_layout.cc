#include "layout/json_layout.h"

#include "common/error.h"
#include "common/json.h"

#include <fstream>
#include <iterator>

namespace weightsync::layout {

using nlohmann::json;

std::string_view tpSplitName(TpSplit split) {
    switch (split) {
        case TpSplit::kReplicated: return "replicated";
        case TpSplit::kRows: return "rows";
        case TpSplit::kCols: return "cols";
    }
    return "?";
}

std::string_view convKindName(ConvKind kind) {
    return kind == ConvKind::kQuantizeFp8 ? "quantize_fp8" : "copy";
}

namespace {

constexpr std::string_view kFormat = "weightsync-layout/1";
constexpr int64_t kMaxTemplateLayers = 4096;

TpSplit parseTp(const std::string &s, const std::string &where) {
    if (s == "replicated") return TpSplit::kReplicated;
    if (s == "rows") return TpSplit::kRows;
    if (s == "cols") return TpSplit::kCols;
    fail(Errc::kInvalidArgument, "{}: tp must be replicated, rows or cols, got '{}'", where, s);
}

ConvKind parseKind(const std::string &s, const std::string &where) {
    if (s == "copy") return ConvKind::kCopy;
    if (s == "quantize_fp8") return ConvKind::kQuantizeFp8;
    fail(Errc::kInvalidArgument, "{}: kind must be copy or quantize_fp8, got '{}'", where, s);
}

std::string substitute(std::string text, int64_t layer) {
    const std::string token = "{i}";
    const std::string value = std::to_string(layer);
    for (size_t pos = text.find(token); pos != std::string::npos; pos = text.find(token, pos)) {
        text.replace(pos, token.size(), value);
        pos += value.size();
    }
    return text;
}

// Calls fn(layer) once per layer the entry covers (once with -1 for untemplated entries).
template <typename Fn>
void forEachLayer(const json &entry, const std::string &name, int64_t num_layers,
                  const std::string &where, Fn &&fn) {
    if (name.find("{i}") == std::string::npos) {
        check(!entry.contains("layers"), Errc::kInvalidArgument,
              "{} '{}': 'layers' given but the name has no {{i}}", where, name);
        fn(-1);
        return;
    }
    int64_t begin = 0;
    int64_t end = num_layers;
    if (entry.contains("layers")) {
        const json &range = entry.at("layers");
        check(range.is_array() && range.size() == 2, Errc::kInvalidArgument,
              "{} '{}': 'layers' must be [begin, end)", where, name);
        begin = range[0].get<int64_t>();
        end = range[1].get<int64_t>();
    }
    check(0 <= begin && begin <= end, Errc::kInvalidArgument, "{} '{}': bad layer range [{}, {})",
          where, name, begin, end);
    check(end > 0 || begin == end, Errc::kInvalidArgument,
          "{} '{}': templated entry needs num_layers or layers", where, name);
    // Parsing safety: a few bytes ("num_layers": 24294967296) must not expand without bound.
    check(end - begin <= kMaxTemplateLayers, Errc::kInvalidArgument,
          "{} '{}': {} layers, more than the {} a template may expand to", where, name, end - begin,
          kMaxTemplateLayers);
    for (int64_t i = begin; i < end; ++i) fn(i);
}

std::string nameAt(const std::string &name, int64_t layer) {
    return layer < 0 ? name : substitute(name, layer);
}

}  // namespace

Layout layoutFromJson(const json &doc) {
    checkNoFloats(doc, "layout document", Errc::kInvalidArgument);  // parsing safety: no UB casts
    try {
        check(doc.is_object(), Errc::kInvalidArgument, "layout document must be a JSON object");
        if (doc.contains("format")) {
            check(doc.at("format").get<std::string>() == kFormat, Errc::kInvalidArgument,
                  "unsupported layout format '{}' (expected '{}')",
                  doc.at("format").get<std::string>(), kFormat);
        }
        const std::string name = doc.value("name", std::string("custom"));
        const int64_t num_layers = doc.value("num_layers", int64_t{0});

        std::vector<SourceTensor> sources;
        for (const json &e : doc.at("sources")) {
            const std::string tmpl = e.at("name").get<std::string>();
            forEachLayer(e, tmpl, num_layers, "source", [&](int64_t layer) {
                sources.push_back({nameAt(tmpl, layer), e.at("shape").get<Shape>(),
                                   parseDType(e.at("dtype").get<std::string>()),
                                   e.value("fsdp_dim", 0), e.value("expert_dim", -1)});
            });
        }
        std::vector<DestTensor> dests;
        for (const json &e : doc.at("destinations")) {
            const std::string tmpl = e.at("name").get<std::string>();
            forEachLayer(e, tmpl, num_layers, "destination", [&](int64_t layer) {
                dests.push_back({nameAt(tmpl, layer), e.at("shape").get<Shape>(),
                                 parseDType(e.at("dtype").get<std::string>())});
            });
        }
        std::vector<Conversion> conversions;
        for (const json &e : doc.at("rules")) {
            const std::string tmpl = e.at("dest").get<std::string>();
            const std::string where = "rule for '" + tmpl + "'";
            forEachLayer(e, tmpl, num_layers, "rule", [&](int64_t layer) {
                Conversion c;
                c.dest = nameAt(tmpl, layer);
                for (const json &s : e.at("sources")) {
                    c.sources.push_back(nameAt(s.get<std::string>(), layer));
                }
                c.kind = parseKind(e.value("kind", std::string("copy")), where);
                c.tp = parseTp(e.value("tp", std::string("replicated")), where);
                c.expert = e.value("expert", false);
                if (c.kind == ConvKind::kQuantizeFp8) {
                    c.scale = nameAt(e.at("scale").get<std::string>(), layer);
                }
                conversions.push_back(std::move(c));
            });
        }
        return Layout(name, std::move(sources), std::move(dests), std::move(conversions));
    } catch (const json::exception &e) {
        fail(Errc::kInvalidArgument, "malformed layout document: {}", e.what());
    }
}

Layout loadLayoutFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    check(in.good(), Errc::kNotFound, "cannot open layout file '{}'", path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const json doc = parseJson(text, fmt::format("layout file '{}'", path), Errc::kInvalidArgument);
    try {
        return layoutFromJson(doc);
    } catch (const Error &e) {
        throw Error(e.code(), "layout file '" + path + "': " + e.what());
    }
}

json toJson(const Layout &layout) {
    json sources = json::array();
    for (const SourceTensor &s : layout.sources()) {
        sources.push_back({{"name", s.name},
                           {"shape", s.shape},
                           {"dtype", dtypeName(s.dtype)},
                           {"fsdp_dim", s.fsdp_dim},
                           {"expert_dim", s.expert_dim}});
    }
    json dests = json::array();
    for (const DestTensor &d : layout.dests()) {
        dests.push_back({{"name", d.name}, {"shape", d.shape}, {"dtype", dtypeName(d.dtype)}});
    }
    json rules = json::array();
    for (const Conversion &c : layout.conversions()) {
        json r = {{"dest", c.dest},
                  {"sources", c.sources},
                  {"kind", convKindName(c.kind)},
                  {"tp", tpSplitName(c.tp)},
                  {"expert", c.expert}};
        if (!c.scale.empty()) r["scale"] = c.scale;
        rules.push_back(std::move(r));
    }
    return {{"format", kFormat},
            {"name", layout.name()},
            {"sources", std::move(sources)},
            {"destinations", std::move(dests)},
            {"rules", std::move(rules)}};
}

}  // namespace weightsync::layout
