#include "layout/derive.h"

#include "common/error.h"
#include "layout/builder.h"
#include "layout/limits.h"
#include "layout/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace weightsync::layout {

std::vector<std::string> ruleSetNames() {
    return rules::names();
}

namespace {

/// <0, 0, >0 as `a` sorts before, with or after `b` when runs of digits compare as numbers.
int naturalCompare(std::string_view a, std::string_view b) {
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (digit(a[i]) && digit(b[j])) {
            size_t ei = i, ej = j;
            while (ei < a.size() && digit(a[ei])) ++ei;
            while (ej < b.size() && digit(b[ej])) ++ej;
            // Numbers without leading zeros compare by length, then digit by digit.
            std::string_view na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
            while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
            while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
            if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
            if (na != nb) return na < nb ? -1 : 1;
            i = ei;
            j = ej;
            continue;
        }
        if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
        ++i;
        ++j;
    }
    const size_t ra = a.size() - i, rb = b.size() - j;
    return ra == rb ? 0 : (ra < rb ? -1 : 1);
}

}  // namespace

bool naturalLess(std::string_view a, std::string_view b) {
    const int c = naturalCompare(a, b);
    // "x.07" and "x.7" are the same number: plain order decides, so the order stays total.
    return c != 0 ? c < 0 : a < b;
}

namespace {

/// Entries in canonical order: rules by destination (natural order), each destination followed
/// by its scale, sources in the order the rules name them.
Layout assemble(const std::string &name, const std::map<std::string, SourceTensor> &sources,
                const std::map<std::string, DestTensor> &dests, std::vector<Conversion> rules) {
    std::sort(rules.begin(), rules.end(),
              [](const Conversion &x, const Conversion &y) { return naturalLess(x.dest, y.dest); });
    std::vector<SourceTensor> src;
    std::vector<DestTensor> dst;
    std::set<std::string> seen;
    for (const Conversion &c : rules) {
        for (const std::string &s : {c.dest, c.scale}) {
            if (s.empty()) continue;
            auto it = dests.find(s);
            check(it != dests.end(), Errc::kInvalidArgument,
                  "layout '{}': rule names destination '{}', which is not listed", name, s);
            dst.push_back(it->second);
        }
        for (const std::string &s : c.sources) {
            auto it = sources.find(s);
            check(it != sources.end(), Errc::kInvalidArgument,
                  "layout '{}': rule for '{}' names source '{}', which is not listed", name, c.dest,
                  s);
            if (seen.insert(s).second) src.push_back(it->second);
        }
    }
    return Layout(name, std::move(src), std::move(dst), std::move(rules));
}

std::vector<std::string> components(const std::string &name) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', start)) {
        out.push_back(name.substr(start, dot - start));
        start = dot + 1;
    }
    out.push_back(name.substr(start));
    return out;
}

bool contains(const std::vector<std::string> &list, const std::string &value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

/// A destination's sources under the rule set, and how it is split.
struct Match {
    std::vector<std::string> sources;
    bool expert = false;
    TpSplit tp = TpSplit::kReplicated;
    std::string how;  // for messages: "same name", "fusion qkv_proj", "stacked experts w13_weight"
};

class Deriver {
  public:
    Deriver(const rules::RuleSet &rules, const std::vector<ParamInfo> &trainer,
            const std::vector<ParamInfo> &inference)
        : r_(rules) {
        for (const auto *side : {&trainer, &inference}) {
            for (const ParamInfo &p : *side) {
                const std::string_view what = side == &trainer ? "trainer" : "inference";
                const bool dims =
                    std::all_of(p.shape.begin(), p.shape.end(), [](int64_t d) { return d >= 1; });
                check(!p.shape.empty() && p.shape.size() <= 3 && dims, Errc::kInvalidArgument,
                      "{} tensor '{}' has shape {}: layouts hold 1-D to 3-D tensors of "
                      "dimensions >= 1",
                      what, p.name, shapeString(p.shape));
            }
        }
        for (const ParamInfo &p : trainer) {
            check(trainer_.emplace(p.name, &p).second, Errc::kInvalidArgument,
                  "trainer tensor '{}' is listed twice", p.name);
            check(p.dtype == DType::kBF16 || p.dtype == DType::kF32, Errc::kInvalidArgument,
                  "trainer tensor '{}' is {}: trainer tensors must be bf16 or fp32", p.name,
                  dtypeName(p.dtype));
        }
        for (const ParamInfo &p : inference) {
            check(inference_.emplace(p.name, &p).second, Errc::kInvalidArgument,
                  "inference tensor '{}' is listed twice", p.name);
        }
    }

    [[nodiscard]] bool hasTrainer(const std::string &name) const { return trainer_.contains(name); }
    [[nodiscard]] const ParamInfo &trainer(const std::string &name) const {
        return *trainer_.at(name);
    }
    [[nodiscard]] const ParamInfo *inference(const std::string &name) const {
        auto it = inference_.find(name);
        return it == inference_.end() ? nullptr : it->second;
    }

    [[nodiscard]] Match match(const ParamInfo &dest) const {
        if (hasTrainer(dest.name)) return exact(dest);
        if (auto m = experts(dest)) return *m;
        if (auto m = fused(dest)) return *m;
        fail(Errc::kInvalidArgument,
             "inference tensor '{}' {} has no trainer source under rules {} (no trainer tensor "
             "of that name, and no {} fusion or stacked-expert rule that matches it)",
             dest.name, shapeString(dest.shape), r_.name, r_.engine);
    }

  private:
    [[nodiscard]] TpSplit moduleSplit(const std::string &module, size_t rank) const {
        if (contains(r_.rows_modules, module)) return TpSplit::kRows;
        if (contains(r_.cols_modules, module) && rank >= 2) return TpSplit::kCols;
        return TpSplit::kReplicated;
    }

    [[nodiscard]] Match exact(const ParamInfo &dest) const {
        const std::vector<std::string> parts = components(dest.name);
        const std::string module = parts.size() >= 2 ? parts[parts.size() - 2] : "";
        Match m{{dest.name}, dest.shape.size() == 3, TpSplit::kReplicated, "same name"};
        // A trainer tensor that is already fused (qkv_proj, or transformers' stacked
        // gate_up_proj) is one part: TP could not split it per part as the engine does, so it is
        // left whole (an engine with TP > 1 then refuses its shard's shape, naming it).
        const bool prefused =
            std::any_of(r_.fusions.begin(), r_.fusions.end(),
                        [&](const rules::Fusion &f) { return f.fused == module; });
        if (!m.expert && !prefused) m.tp = moduleSplit(module, dest.shape.size());
        return m;
    }

    [[nodiscard]] std::optional<Match> experts(const ParamInfo &dest) const {
        const size_t dot = dest.name.rfind('.');
        if (dot == std::string::npos) return std::nullopt;
        const std::string last = dest.name.substr(dot + 1);
        const std::string prefix = dest.name.substr(0, dot + 1);
        for (const rules::ExpertTarget &t : r_.experts) {
            if (t.dest != last) continue;
            for (const std::string &container : r_.expert_containers) {
                const std::string tail = "experts." + container;
                if (!prefix.ends_with(tail)) continue;
                const std::string base = prefix.substr(0, prefix.size() - container.size());
                size_t most = 0;
                for (const auto &alt : t.sources) most = std::max(most, alt.size());
                for (const auto &alt : t.sources) {
                    std::vector<std::string> names;
                    std::vector<std::string> missing;
                    for (const std::string &part : alt) {
                        (hasTrainer(base + part) ? names : missing).push_back(base + part);
                    }
                    if (names.empty()) continue;
                    check(missing.empty(), Errc::kInvalidArgument,
                          "inference tensor '{}' stacks trainer tensors {} under rules {}, but "
                          "trainer tensor '{}' is missing",
                          dest.name, fmt::join(names, " + "), r_.name, missing.front());
                    return Match{names, true, alt.size() == most ? t.tp : TpSplit::kReplicated,
                                 "stacked experts " + t.dest};
                }
                const std::string per_expert = base + "0." + t.per_expert.front() + ".weight";
                check(!hasTrainer(per_expert), Errc::kInvalidArgument,
                      "inference tensor '{}' stacks experts, but the trainer holds them per "
                      "expert ('{}', ...): weightsync layouts take stacked trainer expert tensors "
                      "[experts, rows, cols] (as transformers >= 5 holds them: "
                      "'{}gate_up_proj', '{}down_proj')",
                      dest.name, per_expert, base, base);
            }
        }
        return std::nullopt;
    }

    [[nodiscard]] std::optional<Match> fused(const ParamInfo &dest) const {
        const std::vector<std::string> parts = components(dest.name);
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            for (const rules::Fusion &f : r_.fusions) {
                if (f.fused != parts[i]) continue;
                std::vector<std::string> names, missing;
                for (const std::string &part : f.parts) {
                    std::vector<std::string> renamed = parts;
                    renamed[i] = part;
                    const std::string name = fmt::format("{}", fmt::join(renamed, "."));
                    (hasTrainer(name) ? names : missing).push_back(name);
                }
                if (names.empty()) continue;
                check(missing.empty(), Errc::kInvalidArgument,
                      "inference tensor '{}' fuses {} under rules {}, but trainer tensor '{}' is "
                      "missing",
                      dest.name, fmt::join(f.parts, " + "), r_.name, missing.front());
                return Match{names, dest.shape.size() == 3, moduleSplit(f.fused, dest.shape.size()),
                             "fusion " + f.fused};
            }
        }
        return std::nullopt;
    }

    const rules::RuleSet &r_;
    std::map<std::string, const ParamInfo *, std::less<>> trainer_;
    std::map<std::string, const ParamInfo *, std::less<>> inference_;
};

/// Checks that `m.sources` add up to `dest` (rows concatenated; experts and columns equal).
void checkParts(const ParamInfo &dest, const Match &m, const Deriver &d, std::string_view rules) {
    const auto describe = [&] {
        std::vector<std::string> out;
        for (const std::string &s : m.sources) {
            out.push_back(fmt::format("'{}' {}", s, shapeString(d.trainer(s).shape)));
        }
        return fmt::format("{}", fmt::join(out, " + "));
    };
    if (m.sources.size() == 1) {
        const ParamInfo &src = d.trainer(m.sources.front());
        check(src.shape == dest.shape, Errc::kInvalidArgument,
              "inference tensor '{}' is {} but its trainer source under rules {} ({}) is {}: the "
              "two sides are different models or sizes",
              dest.name, shapeString(dest.shape), rules, describe(), shapeString(src.shape));
        return;
    }
    const size_t rank = dest.shape.size();
    check(rank >= 1 && rank <= 3, Errc::kInvalidArgument, "inference tensor '{}' is {}-D",
          dest.name, rank);
    const size_t row_dim = m.expert ? 1 : 0;
    int64_t rows = 0;
    for (const std::string &s : m.sources) {
        const Shape &shape = d.trainer(s).shape;
        bool fits = shape.size() == rank && shape.size() > row_dim;
        for (size_t k = 0; fits && k < rank; ++k) fits = k == row_dim || shape[k] == dest.shape[k];
        check(fits, Errc::kInvalidArgument,
              "inference tensor '{}' {} fuses {} under rules {}: part '{}' does not fit (only the "
              "rows may differ)",
              dest.name, shapeString(dest.shape), describe(), rules, s);
        rows += shape[row_dim];
    }
    check(rows == dest.shape[row_dim], Errc::kInvalidArgument,
          "inference tensor '{}' has {} rows, but its parts under rules {} add up to {}: {}",
          dest.name, dest.shape[row_dim], rules, rows, describe());
}

}  // namespace

Layout deriveLayout(const std::vector<ParamInfo> &trainer, const std::vector<ParamInfo> &inference,
                    std::string_view rules_name, const std::string &name) {
    const rules::RuleSet &r = rules::ruleSet(rules_name);
    check(static_cast<int64_t>(trainer.size()) <= limits::kMaxTensors &&
              static_cast<int64_t>(inference.size()) <= limits::kMaxTensors,
          Errc::kInvalidArgument, "derive: more than {} tensors on a side", limits::kMaxTensors);
    check(!trainer.empty() && !inference.empty(), Errc::kInvalidArgument,
          "derive: the {} side has no tensors", trainer.empty() ? "trainer" : "inference");
    const Deriver d(r, trainer, inference);

    // FP8 tensors and their block scales.
    std::set<std::string> scales;
    for (const ParamInfo &p : inference) {
        if (p.dtype != DType::kF8E4M3) continue;
        const std::string s = scaleName(p.name);
        const ParamInfo *scale = d.inference(s);
        check(scale != nullptr, Errc::kInvalidArgument,
              "inference tensor '{}' is fp8_e4m3 but has no scale tensor '{}' (rules {}: fp32 "
              "128x128 block scales)",
              p.name, s, r.name);
        check(scale->dtype == DType::kF32, Errc::kInvalidArgument,
              "scale tensor '{}' of '{}' is {}, expected fp32", s, p.name, dtypeName(scale->dtype));
        scales.insert(s);
    }

    std::map<std::string, SourceTensor> sources;
    std::map<std::string, DestTensor> dests;
    std::map<std::string, std::string> consumer;  // trainer tensor -> its destination
    std::vector<Conversion> conversions;
    for (const ParamInfo &p : inference) {
        if (scales.contains(p.name)) continue;
        check(p.dtype == DType::kF8E4M3 || p.dtype == DType::kBF16 || p.dtype == DType::kF32,
              Errc::kInvalidArgument,
              "inference tensor '{}' is {}: destinations are bf16, fp32 or fp8_e4m3", p.name,
              dtypeName(p.dtype));
        if (p.name.ends_with("_scale_inv")) {
            const std::string weight = p.name.substr(0, p.name.size() - 10);
            const ParamInfo *w = d.inference(weight);
            check(w == nullptr, Errc::kInvalidArgument,
                  "inference tensor '{}' is the scale tensor of '{}', which is {}, not fp8_e4m3",
                  p.name, weight, w ? dtypeName(w->dtype) : "");
        }
        const Match m = d.match(p);
        checkParts(p, m, d, r.name);
        Conversion c{p.name, "", m.sources, ConvKind::kCopy, m.tp, m.expert};
        dests.insert_or_assign(p.name, DestTensor{p.name, p.shape, p.dtype});
        if (p.dtype == DType::kF8E4M3) {
            c.kind = ConvKind::kQuantizeFp8;
            c.scale = scaleName(p.name);
            const ParamInfo &scale = *d.inference(c.scale);
            const Shape want = scaleShape(p.shape, m.expert);
            check(scale.shape == want, Errc::kInvalidArgument,
                  "scale tensor '{}' is {}, but 128x128 block scales of '{}' {} are {}", scale.name,
                  shapeString(scale.shape), p.name, shapeString(p.shape), shapeString(want));
            dests.insert_or_assign(c.scale, DestTensor{scale.name, scale.shape, scale.dtype});
        }
        for (const std::string &s : m.sources) {
            const auto [it, fresh] = consumer.emplace(s, p.name);
            check(fresh, Errc::kInvalidArgument,
                  "trainer tensor '{}' would feed both '{}' and '{}' under rules {}", s, it->second,
                  p.name, r.name);
            const ParamInfo &t = d.trainer(s);
            sources.insert_or_assign(s, SourceTensor{s, t.shape, t.dtype, 0, m.expert ? 0 : -1});
        }
        conversions.push_back(std::move(c));
    }
    std::vector<std::string> unused;
    for (const ParamInfo &t : trainer) {
        if (!consumer.contains(t.name)) unused.push_back(t.name);
    }
    if (!unused.empty()) {
        std::sort(unused.begin(), unused.end(), naturalLess);
        fail(Errc::kInvalidArgument,
             "trainer tensor '{}' has no inference destination under rules {}{} (the two sides "
             "are different models, or the inference side lacks it)",
             unused.front(), r.name,
             unused.size() > 1
                 ? fmt::format(" ({} more: {})", unused.size() - 1,
                               fmt::join(unused.begin() + 1,
                                         unused.begin() + std::min<size_t>(unused.size(), 5), ", "))
                 : "");
    }
    return assemble(name, sources, dests, std::move(conversions));
}

Layout canonicalOrder(const Layout &layout, const std::string &name) {
    std::map<std::string, SourceTensor> sources;
    std::map<std::string, DestTensor> dests;
    for (const SourceTensor &s : layout.sources()) sources.insert_or_assign(s.name, s);
    for (const DestTensor &d : layout.dests()) dests.insert_or_assign(d.name, d);
    return assemble(name.empty() ? layout.name() : name, sources, dests, layout.conversions());
}

}  // namespace weightsync::layout
