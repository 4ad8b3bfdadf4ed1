#pragma once
// Subcommands of the weightsync tool; each file registers one.

#include <CLI/CLI.hpp>

namespace weightsync::cli {

void addPlanCommand(CLI::App &app);
void addLayoutCommand(CLI::App &app);
void addAgentCommands(CLI::App &app);
void addDemoCommand(CLI::App &app);

}  // namespace weightsync::cli
