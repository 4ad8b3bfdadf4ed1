#pragma once
// The identity of this machine as peers compare it.

#include <string>

namespace weightsync {

/// "<hostname>/<boot id>": equal for two processes exactly when they run on one machine under
/// one kernel boot (so they can share memory and CUDA IPC handles). Without a readable boot id,
/// the hostname alone.
std::string hostIdentity();

}  // namespace weightsync
