#include "transport/ucx/ucx_context.h"

#include "common/log.h"
#include "transport/ucx/ucx_status.h"

#include <cctype>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

namespace weightsync::transport::ucx {
namespace {

/// Shared-memory message segments: 32 KiB of payload plus UCX's 64-byte header. Puts into
/// registered memory travel as such messages; 4x UCX's default (8256) moved them 15-20% faster
/// here (docs/transport.md).
constexpr const char *kSegmentSize = "32832";
constexpr uint64_t kMaxSegmentSize = 65536;
const std::vector<std::string> kSegmentSizeKeys = {"MM_SEG_SIZE", "POSIX_SEG_SIZE",
                                                   "SYSV_SEG_SIZE"};

struct ConfigDeleter {
    void operator()(ucp_config_t *config) const { ucp_config_release(config); }
};
using ConfigPtr = std::unique_ptr<ucp_config_t, ConfigDeleter>;

/// Whether the user set any of these UCX_* variables (they win over our options). This reads
/// the environment only to respect the user's precedence; UCX itself reads the values.
bool userSetAny(const std::vector<std::string> &variables) {
    for (const auto &variable : variables) {
        if (std::getenv(variable.c_str()) != nullptr) return true;
    }
    return false;
}

void apply(ucp_config_t *config, const std::string &key, const std::string &value,
           const std::vector<std::string> &user_variables) {
    auto log = logger("ucx");
    if (userSetAny(user_variables)) {
        log->debug("keeping the user's {} (ours would be {}={})", user_variables.front(), key,
                   value);
        return;
    }
    checkStatus(ucp_config_modify(config, key.c_str(), value.c_str()), Errc::kInvalidArgument,
                "setting " + key + "=" + value);
    log->debug("config {}={}", key, value);
}

/// Shared-memory (mm) transports hide their peer-failure support unless MM_ERROR_HANDLING=y;
/// without it an endpoint in UCP_ERR_HANDLING_MODE_PEER cannot use them. Only set it when an
/// mm transport may be loaded, since UCX warns about settings no transport consumes.
bool mayUseSharedMemory(const std::string &transports) {
    if (transports.empty() || transports.front() == '^') return true;
    std::stringstream list(transports);
    std::string name;
    while (std::getline(list, name, ',')) {
        if (name == "all" || name == "sm" || name == "shm" || name == "mm" || name == "posix" ||
            name == "sysv") {
            return true;
        }
    }
    return false;
}

/// UCX's memory units ("32832", "32k", "1m"); nullopt for what we cannot parse ("auto", "inf").
std::optional<uint64_t> memoryUnits(const std::string &text) {
    char *end = nullptr;
    const uint64_t number = std::strtoull(text.c_str(), &end, 10);
    if (end == text.c_str()) return std::nullopt;
    switch (std::tolower(static_cast<unsigned char>(*end))) {
        case '\0': return number;
        case 'k': return number << 10;
        case 'm': return number << 20;
        case 'g': return number << 30;
        default: return std::nullopt;
    }
}

/// UCX 1.13 keeps the length of a shared-memory active message in 16 bits: with segments of
/// 64 KiB or more, puts into registered memory (which travel as such messages) are silently lost
/// (measured: the flush succeeds, the bytes never arrive). Refuse such settings.
void checkSegmentSize(const std::string &key, const std::string &value) {
    const auto bytes = memoryUnits(value);
    check(!bytes || *bytes < kMaxSegmentSize, Errc::kInvalidArgument,
          "ucx: {}={} would silently lose writes (UCX keeps shared-memory message lengths in 16 "
          "bits); use less than 64 KiB, e.g. {}",
          key, value, kSegmentSize);
}

}  // namespace

UcxContext::UcxContext(const UcxOptions &options) {
    ucp_config_t *raw = nullptr;
    checkStatus(ucp_config_read(nullptr, nullptr, &raw), Errc::kTransport, "ucp_config_read");
    ConfigPtr config(raw);
    if (!options.transports.empty()) {
        apply(config.get(), "TLS", options.transports, {"UCX_TLS"});
    }
    bool own_segment_size = false;
    for (const auto &key : kSegmentSizeKeys) {
        const char *user = std::getenv(("UCX_" + key).c_str());
        if (user != nullptr) checkSegmentSize("UCX_" + key, user);
        const auto it = options.config.find(key);
        if (it != options.config.end()) checkSegmentSize(key, it->second);
        own_segment_size = own_segment_size || it != options.config.end();
    }
    if (mayUseSharedMemory(userSetAny({"UCX_TLS"}) ? std::string(std::getenv("UCX_TLS"))
                                                   : options.transports)) {
        apply(config.get(), "MM_ERROR_HANDLING", "y",
              {"UCX_MM_ERROR_HANDLING", "UCX_POSIX_ERROR_HANDLING", "UCX_SYSV_ERROR_HANDLING"});
        if (!own_segment_size) {
            apply(config.get(), "MM_SEG_SIZE", kSegmentSize,
                  {"UCX_MM_SEG_SIZE", "UCX_POSIX_SEG_SIZE", "UCX_SYSV_SEG_SIZE"});
        }
    }
    for (const auto &[key, value] : options.config) {
        apply(config.get(), key, value, {"UCX_" + key});
    }

    ucp_params_t params{};
    params.field_mask =
        UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME;
    params.features = UCP_FEATURE_RMA | (options.wakeup ? UCP_FEATURE_WAKEUP : 0);
    params.mt_workers_shared = 0;
    params.name = "weightsync";
    checkStatus(ucp_init(&params, config.get(), &context_), Errc::kTransport,
                "ucp_init (transports '" + options.transports + "')");
    wakeup_ = options.wakeup;

    ucp_context_attr_t attr{};
    attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
    const ucs_status_t status = ucp_context_query(context_, &attr);
    if (status != UCS_OK) {
        ucp_cleanup(context_);
        checkStatus(status, Errc::kTransport, "ucp_context_query");
    }
    cuda_memory_ = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
    logger("ucx")->debug("context ready: {}, memory types {:#x}, transports '{}'", versionString(),
                         attr.memory_types, options.transports);
}

UcxContext::~UcxContext() {
    ucp_cleanup(context_);
}

std::string UcxContext::versionString() {
    return std::string("UCX ") + ucp_get_version_string();
}

}  // namespace weightsync::transport::ucx
