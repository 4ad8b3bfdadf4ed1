#pragma once
// The control protocol's keys and waits. All keys live under the job's PrefixStore; every step key
// carries the weight version, so a message can never pair with another step (bug B11).
//
//   spec                          JobSpec (launcher)
//   init/trainer/<t>              trainer hello: layout fingerprint, mesh
//   init/inference/<peer>         inference hello: fingerprint, expert map, TP, parameter list
//   init/memory/<peer>            agent address + per-tensor descriptors with chunk counts
//   init/ready/<t>                trainer validated every descriptor and connected
//   init/failed                   first init error; every agent aborts on it
//   step/<N>/request              trainer rank 0 asks for version N
//   step/<N>/paused/<peer>        peer stopped reading weights (carries its current version)
//   step/<N>/done/<t>             trainer t finished writing (bytes, writes)
//   step/<N>/failed/<who>         a push error; receivers keep version N-1
//   step/<N>/landed/<peer>        every writer is done with the peer: its bytes of N are complete
//   step/<N>/resumed/<peer>       peer runs version N (only once every peer has landed)
//   step/<N>/verified/<peer>      peer compared every byte with the reference (when verifying)
//   step/<N>/aborted/<peer>       peer gave up on version N and still holds N-1
//   step/<N>/metrics/<t>          trainer t's timings for version N

#include "control/store.h"

#include <chrono>
#include <string>
#include <vector>

namespace weightsync::engine {

namespace keys {
std::string spec();
std::string trainerHello(int rank);
std::string inferenceHello(const std::string &peer);
std::string memory(const std::string &peer);
std::string trainerReady(int rank);
std::string initFailed();
std::string stepPrefix(uint64_t version);
std::string request(uint64_t version);
std::string paused(uint64_t version, const std::string &peer);
std::string done(uint64_t version, int rank);
std::string failed(uint64_t version, const std::string &who);
std::string resumed(uint64_t version, const std::string &peer);
std::string aborted(uint64_t version, const std::string &peer);
std::string verified(uint64_t version, const std::string &peer);
std::string landed(uint64_t version, const std::string &peer);
std::string metrics(uint64_t version, int rank);
}  // namespace keys

/// Waits until every key in `expected` exists. Throws Errc::kPeerLost with the failure message as
/// soon as any key starting with `fail_prefix` appears (empty = none), Errc::kTimeout naming the
/// keys still missing. Returns the values in order.
std::vector<std::string> awaitKeys(control::Store &store, const std::vector<std::string> &expected,
                                   const std::string &fail_prefix,
                                   std::chrono::milliseconds timeout, const std::string &what);

}  // namespace weightsync::engine
