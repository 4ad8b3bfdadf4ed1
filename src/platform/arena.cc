#include "platform/arena.h"

#include "common/error.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace weightsync::platform {

namespace {

class HostArena : public Arena {
  public:
    explicit HostArena(size_t bytes) : size_(bytes) {
        const size_t len = std::max<size_t>(bytes, 1);
        void *p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        check(p != MAP_FAILED, Errc::kIo, "cannot allocate a {}-byte host arena: {}", bytes,
              std::strerror(errno));
        data_ = static_cast<std::byte *>(p);
    }
    ~HostArena() override { ::munmap(data_, std::max<size_t>(size_, 1)); }
    HostArena(const HostArena &) = delete;
    HostArena &operator=(const HostArena &) = delete;

    [[nodiscard]] std::byte *data() const override { return data_; }
    [[nodiscard]] size_t size() const override { return size_; }
    [[nodiscard]] MemoryKind kind() const override { return MemoryKind::kHost; }
    [[nodiscard]] int device() const override { return -1; }

  private:
    std::byte *data_ = nullptr;
    size_t size_;
};

class ViewArena : public Arena {
  public:
    ViewArena(std::byte *data, size_t bytes, MemoryKind kind, int device)
        : data_(data), size_(bytes), kind_(kind), device_(device) {}
    [[nodiscard]] std::byte *data() const override { return data_; }
    [[nodiscard]] size_t size() const override { return size_; }
    [[nodiscard]] MemoryKind kind() const override { return kind_; }
    [[nodiscard]] int device() const override { return device_; }

  private:
    std::byte *data_;
    size_t size_;
    MemoryKind kind_;
    int device_;
};

}  // namespace

std::unique_ptr<Arena> makeHostArena(size_t bytes) {
    return std::make_unique<HostArena>(bytes);
}

std::unique_ptr<Arena> viewArena(std::byte *data, size_t bytes, MemoryKind kind, int device) {
    return std::make_unique<ViewArena>(data, bytes, kind, device);
}

}  // namespace weightsync::platform
