#include "layout/rules.h"

#include "common/error.h"

#include <fmt/format.h>

namespace weightsync::layout::rules {

namespace {

const std::vector<RuleSet> &all() {
    static const std::vector<RuleSet> kSets{hfFp8Rules(), vllmRules()};
    return kSets;
}

}  // namespace

std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const RuleSet &r : all()) out.push_back(r.name);
    return out;
}

const RuleSet &ruleSet(std::string_view name) {
    for (const RuleSet &r : all()) {
        if (r.name == name) return r;
    }
    fail(Errc::kNotFound, "unknown layout rule set '{}' (known: {})", name,
         fmt::join(names(), ", "));
}

}  // namespace weightsync::layout::rules
