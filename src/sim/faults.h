#pragma once
// Fault injection for tests: a process kills, stops or stalls itself, or fails, at a chosen point
// of a chosen version. It plugs into the agents as their protocol-point observer; the production
// agents carry none of it.

#include "control/store.h"
#include "engine/protocol/version.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::sim {

struct Fault {
    enum class Action {
        kKill,   // SIGKILL: the process is gone
        kStop,   // SIGSTOP: the process hangs (until someone sends SIGCONT)
        kStall,  // sleeps `stall_seconds` while alive (its keep-alives go on)
        kError,  // throws, as a failing step of the process would
    };
    engine::protocol::Point point = engine::protocol::Point::kPaused;
    uint64_t version = 0;
    Action action = Action::kKill;
    double stall_seconds = 0;

    /// "<point>@<version>:<action>", action one of kill, stop, stall=<seconds>, error; e.g.
    /// "landed@2:stop". Errc::kInvalidArgument naming what is wrong otherwise.
    static Fault parse(std::string_view text);
    [[nodiscard]] std::string str() const;
};

/// The key a fault is announced under, just before it acts (tests time detection from it).
std::string faultKey(const std::string &who);

/// Acts on this process's faults; an agent's protocol-point observer.
class FaultInjector {
  public:
    FaultInjector(std::shared_ptr<control::Store> store, std::string who,
                  std::vector<Fault> faults);
    void operator()(engine::protocol::Point point, uint64_t version) const;

  private:
    std::shared_ptr<control::Store> store_;
    std::string who_;
    std::vector<Fault> faults_;
};

}  // namespace weightsync::sim
