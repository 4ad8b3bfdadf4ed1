#pragma once
// The names of a job's participants and of every key the protocol writes, under the job's
// namespace in the store. One version's keys live under v/<N>/ and are erased a few versions
// later (Session::collect), so the store holds a bounded number of keys however long a job runs.
//
//   spec                        JobSpec (whoever launches the job)
//   init/trainer/<t>            TrainerHello
//   init/inference/<peer>       InferenceHello
//   init/memory/<peer>          MemoryRecord (registered memory, per transport)
//   init/ready/<t>              trainer t validated every descriptor and connected
//   init/failed                 the first init error; every agent stops on it
//   init/refused/<who>          a participant refused its own input and may still retry
//   lost/<who>                  written by the store when <who> is gone (its last will)
//   left/<who>                  <who> finished its part of the job and left cleanly
//   joined/<who>                <who> (re)joined the job: a lost key older than it is void
//   latest                      the latest version trainer rank 0 requested
//   v/<N>/request               trainer rank 0 asks for version N
//   v/<N>/paused/<peer>         the peer stopped reading weights (Paused)
//   v/<N>/done/<t>              trainer t's writes of N are complete at their targets (Done)
//   v/<N>/ranges/<t>            filesystem: hashes of trainer t's checkpoint writes
//   v/<N>/staged/<k>/<t>        (checksums) trainer t's k-th notice (k = 1, 2, ...): its first
//                               writes of N are complete at their targets (WritesLanded)
//   v/<N>/landed/<peer>         every byte of N is in the peer's memory
//   v/<N>/prepared/<peer>       the peer applied N (staging copied, hooks ran), not serving it
//   v/<N>/outcome               commit or abort: the one decision, first writer wins (Outcome)
//   v/<N>/resumed/<peer>        the peer serves N (Resumed)
//   v/<N>/aborted/<who>         who gave up on N and what it holds (Aborted)
//   v/<N>/verified/<peer>       the peer compared every byte with the reference (Verified)
//   v/<N>/metrics/<t>           trainer t's timings of N (PushMetrics)

#include <cstdint>
#include <string>

namespace weightsync::engine::protocol {

/// Participant names, as keys and messages spell them.
std::string trainerName(int rank);                   // "trainer3"
std::string inferenceName(const std::string &peer);  // "inference-e0r1"
inline constexpr const char *kLauncher = "launcher";

namespace keys {
std::string spec();
std::string trainerHello(int rank);
std::string inferenceHello(const std::string &peer);
std::string memory(const std::string &peer);
std::string trainerReady(int rank);
/// Two-sided transports: the token trainer `rank` made to pair with inference rank `peer`.
std::string pairToken(int rank, const std::string &peer);
std::string initFailed();
std::string initRefused(const std::string &who);
std::string lostPrefix();
std::string lost(const std::string &who);
std::string left(const std::string &who);
std::string joined(const std::string &who);
std::string latest();
std::string versionPrefix(uint64_t version);
std::string request(uint64_t version);
std::string paused(uint64_t version, const std::string &peer);
std::string done(uint64_t version, int rank);
std::string checkpointRanges(uint64_t version, int rank);
/// Trainer `rank`'s notice number `seq` (1-based) of writes complete during `version`.
std::string staged(uint64_t version, uint64_t seq, int rank);
std::string landed(uint64_t version, const std::string &peer);
std::string prepared(uint64_t version, const std::string &peer);
std::string outcome(uint64_t version);
std::string resumed(uint64_t version, const std::string &peer);
std::string aborted(uint64_t version, const std::string &who);
std::string verified(uint64_t version, const std::string &peer);
std::string metrics(uint64_t version, int rank);
}  // namespace keys

/// The participant a key speaks for (the writer of a message key), if any: "v/3/done/1" ->
/// "trainer1", "v/3/landed/e0r1" -> "inference-e0r1", "v/3/request" -> "trainer0".
std::string participantOf(const std::string &key);

}  // namespace weightsync::engine::protocol
