#include "layout/json_layout.h"

#include "common/error.h"
#include "layout/json_fields.h"
#include "layout/limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

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

using jsonfields::Fields;

constexpr std::string_view kFormat = "weightsync-layout/1";

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

std::string nameAt(const std::string &name, int64_t layer) {
    return layer < 0 ? name : substitute(name, layer);
}

/// One entry of a section before expansion: its fields, its name template and the layers it
/// covers ([-1, 0) for an untemplated entry: expanded once, with layer -1).
struct Entry {
    Fields fields;
    std::string name;
    int64_t begin = -1, end = 0;

    [[nodiscard]] int64_t count() const { return end - begin; }
};

/// A section of the document: its key, the key naming an entry, and what an entry is called.
struct Section {
    std::string_view key, name_key, noun;
};
constexpr Section kSources{"sources", "name", "source"};
constexpr Section kDestinations{"destinations", "name", "destination"};
constexpr Section kRules{"rules", "dest", "rule for"};

Entry readEntry(const nlohmann::json &e, const Section &section, size_t index,
                std::optional<int64_t> num_layers) {
    const Fields raw(e, fmt::format("{}[{}]", section.key, index));
    const std::string name = raw.string(section.name_key, limits::kMaxNameLength);
    Entry entry{Fields(e, fmt::format("{} '{}'", section.noun, name)), name};
    const Fields &f = entry.fields;
    if (name.find("{i}") == std::string::npos) {
        check(!f.has("layers"), Errc::kInvalidArgument,
              "{}: 'layers' given but the name has no {{i}}", f.where());
        return entry;
    }
    check(num_layers || f.has("layers"), Errc::kInvalidArgument,
          "{}: templated entry needs num_layers or layers", f.where());
    entry.begin = 0;
    entry.end = num_layers.value_or(0);
    if (f.has("layers")) {
        const nlohmann::json &range = f.at("layers");
        check(range.is_array() && range.size() == 2, Errc::kInvalidArgument,
              "{}: 'layers' must be [begin, end), got {}", f.where(), jsonfields::brief(range));
        entry.begin =
            jsonfields::integer(range[0], f.name("layers") + "[0]", 0, limits::kMaxLayers);
        entry.end = jsonfields::integer(range[1], f.name("layers") + "[1]", 0, limits::kMaxLayers);
    }
    check(entry.begin <= entry.end, Errc::kInvalidArgument, "{}: bad layer range [{}, {})",
          f.where(), entry.begin, entry.end);
    return entry;
}

/// Reads a section's entries and checks, before anything is expanded, that the expansion stays
/// within limits::kMaxTensors (weighted: a rule counts once per source it names).
std::vector<Entry> readSection(const Fields &doc, const Section &section,
                               std::optional<int64_t> num_layers) {
    const nlohmann::json &list = doc.array(section.key, limits::kMaxTensors);
    std::vector<Entry> entries;
    entries.reserve(list.size());
    int64_t expanded = 0;
    for (size_t i = 0; i < list.size(); ++i) {
        entries.push_back(readEntry(list[i], section, i, num_layers));
        const Entry &e = entries.back();
        int64_t weight = 1;
        if (section.key == kRules.key) {
            weight = std::max<int64_t>(
                1, static_cast<int64_t>(e.fields.array("sources", limits::kMaxTensors).size()));
        }
        expanded += e.count() * weight;
        check(expanded <= limits::kMaxTensors, Errc::kInvalidArgument,
              "layout: '{}' expands to more than {} entries (at {}); the limit is documented in "
              "docs/layout-format.md",
              section.key, limits::kMaxTensors, e.fields.where());
    }
    return entries;
}

Shape shapeOf(const Fields &f) {
    const nlohmann::json &dims = f.array("shape", limits::kMaxRank);
    check(!dims.empty(), Errc::kInvalidArgument, "{} must have 1 to {} dimensions", f.name("shape"),
          limits::kMaxRank);
    Shape shape;
    for (size_t i = 0; i < dims.size(); ++i) {
        shape.push_back(jsonfields::integer(dims[i], fmt::format("{}[{}]", f.name("shape"), i), 1,
                                            limits::kMaxDim));
    }
    return shape;
}

DType dtypeOf(const Fields &f) {
    const std::string name = f.string("dtype", 64);
    try {
        return parseDType(name);
    } catch (const Error &e) {
        throw jsonfields::inContext(e, f.where());
    }
}

std::vector<std::string> namesOf(const Fields &f, std::string_view key) {
    const nlohmann::json &list = f.array(key, limits::kMaxTensors);
    check(!list.empty(), Errc::kInvalidArgument, "{} must name at least one tensor", f.name(key));
    std::vector<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) {
        const nlohmann::json &v = list[i];
        check(v.is_string() && !v.get_ref<const std::string &>().empty() &&
                  static_cast<int64_t>(v.get_ref<const std::string &>().size()) <=
                      limits::kMaxNameLength,
              Errc::kInvalidArgument, "{}[{}] must be a tensor name, got {}", f.name(key), i,
              jsonfields::brief(v));
        names.push_back(v.get<std::string>());
    }
    return names;
}

}  // namespace

Layout layoutFromJson(const nlohmann::json &doc) {
    try {
        const Fields top(doc, "layout");
        top.allowOnly({"format", "name", "num_layers", "sources", "destinations", "rules"});
        if (top.has("format")) {
            const std::string format = top.string("format", 64);
            check(format == kFormat, Errc::kInvalidArgument,
                  "unsupported layout format '{}' (expected '{}')", format, kFormat);
        }
        const std::string name = top.string("name", "custom", limits::kMaxNameLength);
        std::optional<int64_t> num_layers;
        if (top.has("num_layers")) num_layers = top.integer("num_layers", 0, limits::kMaxLayers);

        std::vector<SourceTensor> sources;
        for (const Entry &e : readSection(top, kSources, num_layers)) {
            const Fields &f = e.fields;
            f.allowOnly({"name", "shape", "dtype", "fsdp_dim", "expert_dim", "layers"});
            const Shape shape = shapeOf(f);
            const DType dtype = dtypeOf(f);
            const auto fsdp_dim = static_cast<int>(f.integer("fsdp_dim", -1, 2, 0));
            const auto expert_dim = static_cast<int>(f.integer("expert_dim", -1, 2, -1));
            for (int64_t layer = e.begin; layer < e.end; ++layer) {
                sources.push_back({nameAt(e.name, layer), shape, dtype, fsdp_dim, expert_dim});
            }
        }
        std::vector<DestTensor> dests;
        for (const Entry &e : readSection(top, kDestinations, num_layers)) {
            const Fields &f = e.fields;
            f.allowOnly({"name", "shape", "dtype", "layers"});
            const Shape shape = shapeOf(f);
            const DType dtype = dtypeOf(f);
            for (int64_t layer = e.begin; layer < e.end; ++layer) {
                dests.push_back({nameAt(e.name, layer), shape, dtype});
            }
        }
        std::vector<Conversion> conversions;
        for (const Entry &e : readSection(top, kRules, num_layers)) {
            const Fields &f = e.fields;
            f.allowOnly({"dest", "sources", "kind", "scale", "tp", "expert", "layers"});
            const std::vector<std::string> parts = namesOf(f, "sources");
            const ConvKind kind = parseKind(f.string("kind", "copy", 64), f.where());
            const TpSplit tp = parseTp(f.string("tp", "replicated", 64), f.where());
            const bool expert = f.boolean("expert", false);
            std::string scale;
            if (kind == ConvKind::kQuantizeFp8) {
                scale = f.string("scale", limits::kMaxNameLength);
            } else {
                check(!f.has("scale"), Errc::kInvalidArgument,
                      "{}: 'scale' is only for quantize_fp8 rules", f.where());
            }
            for (int64_t layer = e.begin; layer < e.end; ++layer) {
                Conversion c;
                c.dest = nameAt(e.name, layer);
                for (const std::string &s : parts) c.sources.push_back(nameAt(s, layer));
                c.kind = kind;
                c.tp = tp;
                c.expert = expert;
                if (!scale.empty()) c.scale = nameAt(scale, layer);
                conversions.push_back(std::move(c));
            }
        }
        return Layout(name, std::move(sources), std::move(dests), std::move(conversions));
    } catch (const nlohmann::json::exception &e) {
        fail(Errc::kInvalidArgument, "malformed layout document: {}", e.what());
    }
}

Layout loadLayoutFile(const std::string &path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    check(!ec && fs::exists(status), Errc::kNotFound, "cannot open layout file '{}'", path);
    // Not a FIFO or a device: those could feed bytes forever.
    check(fs::is_regular_file(status), Errc::kInvalidArgument,
          "layout file '{}' is not a regular file", path);
    const auto size = fs::file_size(path, ec);
    check(!ec && static_cast<int64_t>(size) <= limits::kMaxLayoutFileBytes, Errc::kInvalidArgument,
          "layout file '{}' is larger than the limit of {} bytes", path,
          limits::kMaxLayoutFileBytes);
    std::ifstream in(path, std::ios::binary);
    check(in.good(), Errc::kNotFound, "cannot open layout file '{}'", path);
    std::string text(static_cast<size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    check(in.gcount() == static_cast<std::streamsize>(size), Errc::kIo,
          "cannot read layout file '{}'", path);
    const nlohmann::json doc = jsonfields::parse(text, fmt::format("layout file '{}'", path));
    try {
        return layoutFromJson(doc);
    } catch (const Error &e) {
        throw jsonfields::inContext(e, fmt::format("layout file '{}'", path));
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
