#include "transport/selector.h"

#include "common/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <utility>

namespace weightsync::transport {

namespace {

constexpr std::array<std::pair<TransportChoice, std::string_view>, 6> kChoices{{
    {TransportChoice::kAuto, "auto"},
    {TransportChoice::kUcx, "ucx"},
    {TransportChoice::kCudaIpc, "cuda_ipc"},
    {TransportChoice::kInproc, "inproc"},
    {TransportChoice::kFilesystem, "filesystem"},
    {TransportChoice::kNccl, "nccl"},
}};

constexpr std::string_view kUcx = "ucx";
constexpr std::string_view kCudaIpc = "cuda_ipc";

}  // namespace

std::string_view choiceName(TransportChoice choice) {
    for (const auto &[c, name] : kChoices) {
        if (c == choice) return name;
    }
    return "?";
}

std::optional<TransportChoice> parseChoice(std::string_view name) {
    for (const auto &[c, n] : kChoices) {
        if (n == name) return c;
    }
    return std::nullopt;
}

std::vector<std::string_view> choiceNames() {
    std::vector<std::string_view> out;
    for (const auto &[c, name] : kChoices) out.push_back(name);
    return out;
}

std::vector<std::string> receiverCandidates(TransportChoice choice, MemoryKind kind) {
    if (choice == TransportChoice::kFilesystem) return {};  // receivers read checkpoint files
    if (choice != TransportChoice::kAuto) return {std::string(choiceName(choice))};
    if (kind == MemoryKind::kCuda) return {std::string(kCudaIpc), std::string(kUcx)};
    return {std::string(kUcx)};
}

bool keepOffer(TransportChoice choice, const Capabilities &capabilities, MemoryKind kind) {
    if (choice != TransportChoice::kAuto) return true;
    return kind == MemoryKind::kCuda ? capabilities.cuda_memory : capabilities.host_memory;
}

std::string selectBackend(TransportChoice choice, MemoryKind local, const PeerOffer &peer,
                          const std::string &peer_name) {
    const auto offers = [&](std::string_view b) {
        return std::find(peer.backends.begin(), peer.backends.end(), b) != peer.backends.end();
    };
    if (choice != TransportChoice::kAuto) {
        const std::string_view name = choiceName(choice);
        check(offers(name), Errc::kUnsupported,
              "inference rank {} does not offer transport '{}' (it offers: {})", peer_name, name,
              fmt::join(peer.backends, ", "));
        return std::string(name);
    }
    if (local == MemoryKind::kCuda && peer.kind == MemoryKind::kCuda && peer.same_host &&
        offers(kCudaIpc)) {
        return std::string(kCudaIpc);
    }
    check(offers(kUcx), Errc::kUnsupported,
          "no transport reaches inference rank {}: it offers {} and is {} host", peer_name,
          fmt::join(peer.backends, ", "), peer.same_host ? "on this" : "on another");
    return std::string(kUcx);
}

}  // namespace weightsync::transport
