#include "engine/protocol/keys.h"

#include <fmt/format.h>

namespace weightsync::engine::protocol {

std::string trainerName(int rank) {
    return fmt::format("trainer{}", rank);
}

std::string inferenceName(const std::string &peer) {
    return "inference-" + peer;
}

namespace keys {
std::string spec() {
    return "spec";
}
std::string trainerHello(int rank) {
    return fmt::format("init/trainer/{}", rank);
}
std::string inferenceHello(const std::string &peer) {
    return "init/inference/" + peer;
}
std::string memory(const std::string &peer) {
    return "init/memory/" + peer;
}
std::string trainerReady(int rank) {
    return fmt::format("init/ready/{}", rank);
}
std::string pairToken(int rank, const std::string &peer) {
    return fmt::format("init/pair/{}/{}", rank, peer);
}
std::string initFailed() {
    return "init/failed";
}
std::string initRefused(const std::string &who) {
    return "init/refused/" + who;
}
std::string lostPrefix() {
    return "lost/";
}
std::string lost(const std::string &who) {
    return lostPrefix() + who;
}
std::string left(const std::string &who) {
    return "left/" + who;
}
std::string joined(const std::string &who) {
    return "joined/" + who;
}
std::string latest() {
    return "latest";
}
std::string versionPrefix(uint64_t version) {
    return fmt::format("v/{}/", version);
}
std::string request(uint64_t version) {
    return versionPrefix(version) + "request";
}
std::string paused(uint64_t version, const std::string &peer) {
    return versionPrefix(version) + "paused/" + peer;
}
std::string done(uint64_t version, int rank) {
    return versionPrefix(version) + fmt::format("done/{}", rank);
}
std::string checkpointRanges(uint64_t version, int rank) {
    return versionPrefix(version) + fmt::format("ranges/{}", rank);
}
std::string staged(uint64_t version, uint64_t seq, int rank) {
    return versionPrefix(version) + fmt::format("staged/{}/{}", seq, rank);
}
std::string landed(uint64_t version, const std::string &peer) {
    return versionPrefix(version) + "landed/" + peer;
}
std::string prepared(uint64_t version, const std::string &peer) {
    return versionPrefix(version) + "prepared/" + peer;
}
std::string outcome(uint64_t version) {
    return versionPrefix(version) + "outcome";
}
std::string resumed(uint64_t version, const std::string &peer) {
    return versionPrefix(version) + "resumed/" + peer;
}
std::string aborted(uint64_t version, const std::string &who) {
    return versionPrefix(version) + "aborted/" + who;
}
std::string verified(uint64_t version, const std::string &peer) {
    return versionPrefix(version) + "verified/" + peer;
}
std::string metrics(uint64_t version, int rank) {
    return versionPrefix(version) + fmt::format("metrics/{}", rank);
}
}  // namespace keys

std::string participantOf(const std::string &key) {
    const auto last = [&] { return key.substr(key.rfind('/') + 1); };
    const auto under = [&](const std::string &part) {
        return key.find("/" + part + "/") != std::string::npos || key.starts_with(part + "/");
    };
    if (key.ends_with("/request")) return trainerName(0);
    if (key.starts_with("init/pair/")) {  // init/pair/<trainer rank>/<peer>
        const size_t from = std::string("init/pair/").size();
        return trainerName(std::stoi(key.substr(from, key.find('/', from) - from)));
    }
    if (under("done") || under("ranges") || under("staged") || under("metrics") ||
        under("trainer") || under("ready")) {
        return trainerName(std::stoi(last()));
    }
    if (under("paused") || under("landed") || under("prepared") || under("resumed") ||
        under("verified") || under("inference") || under("memory")) {
        return inferenceName(last());
    }
    return "";
}

}  // namespace weightsync::engine::protocol
