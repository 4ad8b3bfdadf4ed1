#include "common/host.h"

#include <unistd.h>

#include <array>
#include <fstream>

namespace weightsync {

std::string hostIdentity() {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0) name[0] = '\0';
    std::string boot_id;
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    if (in) std::getline(in, boot_id);
    return boot_id.empty() ? std::string(name.data()) : std::string(name.data()) + "/" + boot_id;
}

}  // namespace weightsync
