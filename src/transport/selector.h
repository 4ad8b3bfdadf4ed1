#pragma once
// Which backend carries the writes between two ranks: a pure policy from where the memory of
// both ends lives, whether they share a host, and what each backend can do. Receivers offer
// every backend that can reach their memory; each writer picks one per receiver.
//
//   job's choice   receiver memory   offers                       writer picks
//   auto           CUDA              cuda_ipc, ucx (if it can     cuda_ipc for CUDA memory on the
//                                    register CUDA memory)        same host, else ucx
//   auto           host              ucx                          ucx
//   <backend>      any               <backend>                    <backend>
//   filesystem     any               nothing (the data goes through checkpoint files)

#include "transport/transport.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::transport {

/// A job's transport: one backend for every pair of ranks, or kAuto (chosen per pair).
enum class TransportChoice : uint8_t { kAuto, kUcx, kCudaIpc, kInproc, kFilesystem, kNccl };

/// "auto", "ucx", "cuda_ipc", "inproc", "filesystem", "nccl" (auto never picks the last two).
std::string_view choiceName(TransportChoice choice);
/// Parses choiceName()'s names; nullopt for anything else.
std::optional<TransportChoice> parseChoice(std::string_view name);
/// Every name parseChoice() accepts, in enum order.
std::vector<std::string_view> choiceNames();

/// The backends (registry names) a receiver whose memory is of `kind` creates and offers, in
/// order of preference. Before publishing one, it asks keepOffer().
std::vector<std::string> receiverCandidates(TransportChoice choice, MemoryKind kind);

/// Whether a receiver keeps offering a candidate it created: a backend the job names is always
/// kept (registering the memory then says what fails); under kAuto only one whose capabilities
/// include memory of `kind`.
bool keepOffer(TransportChoice choice, const Capabilities &capabilities, MemoryKind kind);

/// One receiver as a writer sees it.
struct PeerOffer {
    std::vector<std::string> backends;    // as the receiver offers them
    MemoryKind kind = MemoryKind::kHost;  // where its memory lives
    bool same_host = false;               // same machine and boot as the writer (hostIdentity())
};

/// The backend a writer whose memory is of `local` kind uses to reach `peer` (named
/// `peer_name` in errors). Throws Errc::kUnsupported naming the peer and what it offers when
/// no offered backend fits.
std::string selectBackend(TransportChoice choice, MemoryKind local, const PeerOffer &peer,
                          const std::string &peer_name);

}  // namespace weightsync::transport
