#pragma once
// Two-sided transports (NCCL) need the receiver's side of a plan: which trainer ranks write into
// an inference rank, and the receives it posts so that they match each trainer's writes in
// order. Pure functions of the plan, which every rank computes alike.

#include "planner/plan.h"

#include <cstdint>
#include <vector>

namespace weightsync::planner {

/// One write as its receiver posts it.
struct Receive {
    int trainer = 0;     // the writing trainer rank
    uint32_t dest = 0;   // index into layout.dests()
    uint32_t stage = 0;  // the write's pipeline stage
    int64_t dest_offset = 0;
    int64_t bytes = 0;
};

/// The trainer ranks that write into peer `peer` (an index into plan.peers), ascending.
std::vector<int> writersOf(const Plan &plan, uint32_t peer);

/// The peers trainer rank `rank` writes into, ascending.
std::vector<uint32_t> readersOf(const Plan &plan, int rank);

/// Every write into peer `peer`, ordered by stage, then trainer rank, then the trainer's plan
/// order. Restricted to one trainer it is exactly that trainer's writes to `peer` in plan order
/// (the order NCCL matches receives to sends in). Throws kInvalidArgument for a peer outside
/// the plan.
std::vector<Receive> receivesOf(const Plan &plan, uint32_t peer);

}  // namespace weightsync::planner
