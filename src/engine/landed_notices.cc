#include "engine/landed_notices.h"

#include <thread>

namespace weightsync::engine {

using transport::TransportBackend;

void LandedNotices::posted(int64_t writes,
                           const std::vector<transport::TransportBackend *> &backends) {
    if (stopped_ || writes <= published_writes_) return;
    Stage stage{writes, {}};
    for (TransportBackend *b : backends) {
        const std::optional<uint64_t> mark = b->mark();
        if (!mark) {
            stopped_ = true;  // this backend's writes are known complete at its flush only
            stages_.clear();
            return;
        }
        stage.marks.emplace_back(b, *mark);
    }
    stages_.push_back(std::move(stage));
}

bool LandedNotices::advance(int64_t &writes) {
    while (!stages_.empty()) {
        for (auto &[backend, mark] : stages_.front().marks) {
            const TransportBackend::MarkState state = backend->markState(mark);
            if (state == TransportBackend::MarkState::kFailed) return false;
            if (state == TransportBackend::MarkState::kPending) return true;
        }
        writes = stages_.front().writes;
        stages_.pop_front();
    }
    return true;
}

void LandedNotices::poll() {
    if (stopped_) return;
    int64_t writes = published_writes_;
    if (!advance(writes)) {
        stopped_ = true;  // the flush reports the failure; receivers check at the done
        stages_.clear();
    }
    if (writes <= published_writes_) return;
    published_writes_ = writes;
    publish_(++notices_, writes);
}

void LandedNotices::drain(std::chrono::steady_clock::time_point deadline,
                          std::chrono::microseconds interval) {
    for (;;) {
        poll();
        if (stopped_ || stages_.empty() || std::chrono::steady_clock::now() >= deadline) return;
        std::this_thread::sleep_for(interval);
    }
}

}  // namespace weightsync::engine
