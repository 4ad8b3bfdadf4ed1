#pragma once
// Layouts as JSON files (docs/layout-format.md): the inference engine's parameter list plus the
// mapping rules, so that a new engine version needs no code change.

#include "layout/layout.h"

#include <nlohmann/json.hpp>

#include <string>

namespace weightsync::layout {

/// Parses a layout document; entries whose names contain "{i}" expand over their layer range.
/// Throws Errc::kInvalidArgument naming the entry on any error.
Layout layoutFromJson(const nlohmann::json &doc);
Layout loadLayoutFile(const std::string &path);
/// The expanded, canonical form (no templates); layoutFromJson(toJson(l)) reproduces l.
nlohmann::json toJson(const Layout &layout);

std::string_view tpSplitName(TpSplit split);
std::string_view convKindName(ConvKind kind);

}  // namespace weightsync::layout
