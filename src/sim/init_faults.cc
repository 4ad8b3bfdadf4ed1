#include "sim/init_faults.h"

#include "common/error.h"
#include "common/log.h"
#include "engine/messages.h"
#include "engine/protocol/keys.h"

#include <nlohmann/json.hpp>

namespace weightsync::sim {

namespace {

namespace keys = engine::protocol::keys;

class MisreportingStore : public control::Store {
  public:
    MisreportingStore(std::shared_ptr<control::Store> inner, InitFaults faults)
        : inner_(std::move(inner)), faults_(std::move(faults)) {}

    void set(const std::string &key, const std::string &value) override {
        inner_->set(key, published(key, value));
    }
    std::optional<std::string> get(const std::string &key) override {
        auto value = inner_->get(key);
        if (value) value = read(key, *value);
        return value;
    }
    std::string wait(const std::string &key, std::chrono::milliseconds timeout) override {
        return read(key, inner_->wait(key, timeout));
    }
    bool compareSet(const std::string &key, const std::optional<std::string> &expected,
                    const std::string &desired) override {
        return inner_->compareSet(key, expected, desired);
    }
    int64_t add(const std::string &key, int64_t delta) override { return inner_->add(key, delta); }
    std::vector<control::KeyValue> list(const std::string &prefix) override {
        return inner_->list(prefix);
    }
    std::vector<control::KeyValue> watch(const std::string &prefix, uint64_t after_revision,
                                         std::chrono::milliseconds timeout) override {
        return inner_->watch(prefix, after_revision, timeout);
    }
    void erase(const std::string &key) override { inner_->erase(key); }
    size_t erasePrefix(const std::string &prefix) override { return inner_->erasePrefix(prefix); }
    std::unique_ptr<control::LastWill> lastWill(const std::string &key, const std::string &value,
                                                std::chrono::milliseconds ttl) override {
        return inner_->lastWill(key, value, ttl);
    }

  private:
    /// The job spec with another model, as the faulty rank reads it.
    std::string read(const std::string &key, const std::string &value) const {
        if (key != keys::spec() || faults_.model.empty()) return value;
        nlohmann::json spec = nlohmann::json::parse(value);
        spec["model"] = faults_.model;
        spec.erase("layers");
        logger("sim")->warn("fault injection: reading the job as model '{}'", faults_.model);
        return spec.dump();
    }

    /// A memory record with one tensor's chunk a byte short, as the faulty rank publishes it.
    std::string published(const std::string &key, const std::string &value) const {
        if (faults_.shrink_tensor.empty() || !key.starts_with(keys::memory(""))) return value;
        engine::MemoryRecord record = engine::MemoryRecord::fromJson(nlohmann::json::parse(value));
        bool found = false;
        for (engine::TensorMemory &t : record.tensors) {
            if (t.name != faults_.shrink_tensor) continue;
            for (engine::Chunk &c : t.chunks) c.bytes -= c.bytes > 0 ? 1 : 0;
            found = true;
        }
        check(found, Errc::kInvalidArgument, "fault injection: no tensor '{}' to shrink",
              faults_.shrink_tensor);
        logger("sim")->warn("fault injection: publishing '{}' one byte short",
                            faults_.shrink_tensor);
        return record.toJson().dump();
    }

    std::shared_ptr<control::Store> inner_;
    InitFaults faults_;
};

}  // namespace

std::shared_ptr<control::Store> misreportingStore(std::shared_ptr<control::Store> inner,
                                                  const InitFaults &faults) {
    if (!faults.any()) return inner;
    return std::make_shared<MisreportingStore>(std::move(inner), faults);
}

}  // namespace weightsync::sim
