// A trainer's staged notices (engine/landed_notices.h) over real backends: the in-process
// backend (every write complete when posted) publishes one notice per stage that adds writes,
// numbered from 1; a stage whose writes can fail at the flush (the fault backend's dropped peer)
// ends the notices of the version, so receivers check those writes at the done only.

#include "engine/landed_notices.h"
#include "transport/fault/fault_backend.h"
#include "transport/inproc/inproc_backend.h"

#include <gtest/gtest.h>

#include <chrono>
#include <utility>
#include <vector>

namespace weightsync::engine {
namespace {

using namespace std::chrono_literals;

struct Rig {
    transport::FaultInjectingBackend sender{std::make_unique<transport::InprocBackend>(), {}};
    transport::InprocBackend receiver;
    std::vector<uint8_t> source = std::vector<uint8_t>(64, 5);
    std::vector<uint8_t> target = std::vector<uint8_t>(64, 0);
    std::unique_ptr<transport::LocalRegion> src, dst;
    std::unique_ptr<transport::RemoteRegion> remote;
    std::vector<std::pair<uint64_t, int64_t>> published;
    LandedNotices notices{
        [this](uint64_t n, int64_t writes) { published.emplace_back(n, writes); }};

    Rig() {
        src = sender.registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
        dst = receiver.registerMemory(target.data(), target.size(), MemoryKind::kHost, -1);
        sender.connect("r", receiver.address());
        remote = sender.importRegion("r", dst->describe());
    }
    void stage(int64_t writes_after) {
        sender.postWrite(*src, 0, *remote, 0, 8);
        notices.posted(writes_after, {&sender});
        notices.poll();
    }
};

TEST(LandedNotices, OneNoticePerStageAsItsWritesComplete) {
    Rig r;
    r.stage(3);
    r.stage(5);
    r.notices.posted(5, {&r.sender});  // a stage without writes: nothing new
    r.notices.poll();
    r.notices.drain(std::chrono::steady_clock::now() + 10s);
    EXPECT_EQ(r.published, (std::vector<std::pair<uint64_t, int64_t>>{{1, 3}, {2, 5}}));
    EXPECT_EQ(r.notices.published(), 2u);
    EXPECT_EQ(r.target[0], 5);
}

TEST(LandedNotices, WritesThatMayFailAtTheFlushEndTheNotices) {
    Rig r;
    r.stage(2);
    r.sender.dropPeer("r");  // its writes are lost; the flush will say so
    r.stage(4);
    r.sender.restorePeer("r");
    r.stage(6);  // after a failed mark nothing more is announced this version
    r.notices.drain(std::chrono::steady_clock::now() + 10s);
    EXPECT_EQ(r.published, (std::vector<std::pair<uint64_t, int64_t>>{{1, 2}}));
    EXPECT_THROW((void)r.sender.flush(100ms), Error);
}

}  // namespace
}  // namespace weightsync::engine
