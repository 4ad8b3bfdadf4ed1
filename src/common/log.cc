#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace weightsync {
namespace {
std::mutex g_mutex;
spdlog::level::level_enum g_level = spdlog::level::warn;
}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string &subsystem) {
    std::lock_guard lock(g_mutex);
    auto existing = spdlog::get(subsystem);
    if (existing) return existing;
    auto created = spdlog::stderr_color_mt(subsystem);
    created->set_level(g_level);
    created->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
    return created;
}

void setLogLevel(spdlog::level::level_enum level) {
    std::lock_guard lock(g_mutex);
    g_level = level;
    spdlog::apply_all([level](const std::shared_ptr<spdlog::logger> &l) { l->set_level(level); });
}

}  // namespace weightsync
