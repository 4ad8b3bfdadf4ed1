#pragma once
// Rendezvous helpers built on any Store. Each name is used exactly once: callers put the weight
// version (or round) into it, e.g. "v/17/pushed", so a retried or skipped step can never pair
// with another step's barrier (reference design B11). Timeouts name the ranks that are missing.

#include "control/store.h"

#include <chrono>
#include <string>
#include <vector>

namespace weightsync::control {

/// Blocks until all `world` ranks have entered barrier `name`. Keys used under name:
/// "<name>/rank/<r>" (who arrived), "<name>/count" (arrivals), "<name>/done" (set by the last).
/// Throws kTimeout ("barrier 'n' timed out after T ms: 3 of 4 arrived; missing ranks: [2]"),
/// kProtocol when a rank enters twice or more than `world` ranks arrive (a reused name), and
/// kInvalidArgument for a rank outside [0, world).
void barrier(Store &store, const std::string &name, int world, int rank,
             std::chrono::milliseconds timeout);

/// Waits for every key under one shared deadline and returns their values in order.
/// kTimeout names the keys still absent.
std::vector<std::string> waitAll(Store &store, const std::vector<std::string> &keys,
                                 std::chrono::milliseconds timeout);

/// Each rank publishes payload as "<name>/<rank>" and gets every rank's payload, indexed by
/// rank. kTimeout names the missing ranks; kProtocol when this rank already published.
std::vector<std::string> allGather(Store &store, const std::string &name, int world, int rank,
                                   const std::string &payload, std::chrono::milliseconds timeout);

/// "[2, 5, 7]", at most `limit` entries then "... (N more)".
std::string formatRanks(const std::vector<int> &ranks, size_t limit = 32);

}  // namespace weightsync::control
