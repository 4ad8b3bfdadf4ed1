#pragma once
// Leveled logging with one named logger per subsystem ("plan", "ucx", "control", ...).
// Loggers write to stderr; the level is set explicitly (setLogLevel), never read from the
// environment.

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace weightsync {

std::shared_ptr<spdlog::logger> logger(const std::string &subsystem);
void setLogLevel(spdlog::level::level_enum level);

}  // namespace weightsync
