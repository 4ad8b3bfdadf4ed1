#include "sim/faults.h"

#include "common/error.h"
#include "common/log.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <thread>

namespace weightsync::sim {

namespace {

uint64_t parseVersion(std::string_view text, std::string_view whole) {
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    check(ec == std::errc() && end == text.data() + text.size() && v > 0, Errc::kInvalidArgument,
          "fault '{}': '{}' is not a version (1, 2, ...)", whole, text);
    return v;
}

}  // namespace

Fault Fault::parse(std::string_view text) {
    const size_t at = text.find('@');
    const size_t colon = text.find(':', at == std::string_view::npos ? 0 : at);
    check(at != std::string_view::npos && colon != std::string_view::npos, Errc::kInvalidArgument,
          "fault '{}' must read <point>@<version>:<action>", text);
    Fault f;
    f.point = engine::protocol::parsePoint(text.substr(0, at));
    f.version = parseVersion(text.substr(at + 1, colon - at - 1), text);
    const std::string_view action = text.substr(colon + 1);
    if (action == "kill") {
        f.action = Action::kKill;
    } else if (action == "stop") {
        f.action = Action::kStop;
    } else if (action == "error") {
        f.action = Action::kError;
    } else if (action.starts_with("stall=")) {
        f.action = Action::kStall;
        const std::string seconds(action.substr(6));
        char *end = nullptr;
        f.stall_seconds = std::strtod(seconds.c_str(), &end);
        check(end != seconds.c_str() && *end == '\0' && std::isfinite(f.stall_seconds) &&
                  f.stall_seconds > 0 && f.stall_seconds <= 3600,
              Errc::kInvalidArgument, "fault '{}': stall needs seconds in (0, 3600]", text);
    } else {
        fail(Errc::kInvalidArgument,
             "fault '{}': unknown action '{}' (kill, stop, stall=<seconds>, error)", text, action);
    }
    return f;
}

std::string Fault::str() const {
    const char *names[] = {"kill", "stop", "stall", "error"};
    std::string what = names[static_cast<int>(action)];
    if (action == Action::kStall) what += fmt::format("={}", stall_seconds);
    return fmt::format("{}@{}:{}", engine::protocol::pointName(point), version, what);
}

std::string faultKey(const std::string &who) {
    return "faults/" + who;
}

FaultInjector::FaultInjector(std::shared_ptr<control::Store> store, std::string who,
                             std::vector<Fault> faults)
    : store_(std::move(store)), who_(std::move(who)), faults_(std::move(faults)) {}

void FaultInjector::operator()(engine::protocol::Point point, uint64_t version) const {
    for (const Fault &f : faults_) {
        if (f.point != point || f.version != version) continue;
        logger("sim")->warn("{}: injecting fault {}", who_, f.str());
        store_->set(faultKey(who_), f.str());
        switch (f.action) {
            case Fault::Action::kKill: std::raise(SIGKILL); break;
            case Fault::Action::kStop: std::raise(SIGSTOP); break;
            case Fault::Action::kStall:
                std::this_thread::sleep_for(std::chrono::duration<double>(f.stall_seconds));
                break;
            case Fault::Action::kError:
                fail(Errc::kInternal, "{}: injected fault {}", who_, f.str());
        }
    }
}

}  // namespace weightsync::sim
