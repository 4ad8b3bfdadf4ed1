#include "transport/filesystem/files.h"

#include "common/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

namespace weightsync::transport::fs {

namespace {

constexpr size_t kHashChunk = size_t{4} << 20;
constexpr auto kPollInterval = std::chrono::milliseconds(5);
constexpr int kMaxIoThreads = 8;

[[noreturn]] void failErrno(std::string_view what, const std::string &path) {
    const int err = errno;
    fail(err == ENOENT ? Errc::kNotFound : Errc::kIo, "{} '{}': {}", what, path,
         std::strerror(err));
}

std::string parentOf(const std::string &path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

File::~File() {
    if (fd_ >= 0) ::close(fd_);
}

File::File(File &&other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
}

File &File::operator=(File &&other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.fd_;
        path_ = std::move(other.path_);
        other.fd_ = -1;
    }
    return *this;
}

File File::create(const std::string &path, int64_t size) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) failErrno("cannot create", path);
    File file(fd, path);
    if (file.size() != size && ::ftruncate(fd, size) != 0) failErrno("cannot size", path);
    return file;
}

File File::openRead(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) failErrno("cannot open", path);
    return {fd, path};
}

File File::openDirectory(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) failErrno("cannot open directory", path);
    return {fd, path};
}

void File::writeAt(int64_t offset, const void *data, size_t bytes) const {
    const auto *p = static_cast<const std::byte *>(data);
    while (bytes > 0) {
        const ssize_t n = ::pwrite(fd_, p, bytes, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) failErrno("cannot write", path_);
        p += n;
        bytes -= static_cast<size_t>(n);
        offset += n;
    }
}

void File::readAt(int64_t offset, void *out, size_t bytes) const {
    auto *p = static_cast<std::byte *>(out);
    while (bytes > 0) {
        const ssize_t n = ::pread(fd_, p, bytes, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) failErrno("cannot read", path_);
        check(n > 0, Errc::kCorruption, "'{}' ends at byte {}, {} bytes short of what was read",
              path_, offset, bytes);
        p += n;
        bytes -= static_cast<size_t>(n);
        offset += n;
    }
}

void File::startWriteback(int64_t offset, size_t bytes) const {
    if (::sync_file_range(fd_, offset, static_cast<off64_t>(bytes), SYNC_FILE_RANGE_WRITE) != 0) {
        failErrno("cannot start the writeback of", path_);
    }
}

void File::sync() const {
    if (::fsync(fd_) != 0) failErrno("cannot fsync", path_);
}

int64_t File::size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) failErrno("cannot stat", path_);
    return st.st_size;
}

void Xxh3Stream::Free::operator()(XXH3_state_s *state) const {
    (void)XXH3_freeState(state);
}

Xxh3Stream::Xxh3Stream() : state_(XXH3_createState()) {
    check(state_ != nullptr, Errc::kInternal, "cannot allocate a hash state");
    (void)XXH3_64bits_reset(state_.get());
}

void Xxh3Stream::update(const void *data, size_t bytes) {
    (void)XXH3_64bits_update(state_.get(), data, bytes);
}

uint64_t Xxh3Stream::digest() const {
    return XXH3_64bits_digest(state_.get());
}

uint64_t File::hashRange(int64_t offset, int64_t bytes) const {
    Xxh3Stream hash;
    // Ranges are often small (a write each): a buffer no larger than the range.
    const auto buffer_bytes =
        std::clamp<size_t>(static_cast<size_t>(std::max<int64_t>(bytes, 1)), 1, kHashChunk);
    const std::unique_ptr<std::byte[]> buffer(new std::byte[buffer_bytes]);
    const int64_t end = offset + bytes;
    for (int64_t at = offset; at < end;) {
        const auto n = std::min(static_cast<size_t>(end - at), buffer_bytes);
        readAt(at, buffer.get(), n);
        hash.update(buffer.get(), n);
        at += static_cast<int64_t>(n);
    }
    return hash.digest();
}

void makeDirectories(const std::string &path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    check(!ec, Errc::kIo, "cannot create directory '{}': {}", path, ec.message());
}

void syncDirectory(const std::string &path) {
    File::openDirectory(path).sync();
}

void renameFile(const std::string &from, const std::string &to) {
    if (::rename(from.c_str(), to.c_str()) != 0) failErrno("cannot rename to '" + to + "'", from);
}

void removeFile(const std::string &path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) failErrno("cannot remove", path);
}

void writeFileAtomically(const std::string &path, std::string_view content) {
    const std::string temp = path + ".tmp";
    {
        const File f = File::create(temp, static_cast<int64_t>(content.size()));
        f.writeAt(0, content.data(), content.size());
        f.sync();
    }
    renameFile(temp, path);
    syncDirectory(parentOf(path));
}

std::string readSmallFile(const std::string &path, int64_t max_bytes) {
    const File f = File::openRead(path);
    const int64_t size = f.size();
    check(size <= max_bytes, Errc::kCorruption, "'{}' has {} bytes, more than the {} expected",
          path, size, max_bytes);
    std::string out(static_cast<size_t>(size), '\0');
    f.readAt(0, out.data(), out.size());
    return out;
}

void waitForFile(const std::string &path, std::chrono::steady_clock::time_point deadline,
                 const std::string &what) {
    while (::access(path.c_str(), F_OK) != 0) {
        check(std::chrono::steady_clock::now() < deadline, Errc::kTimeout,
              "{}: '{}' did not appear in time", what, path);
        std::this_thread::sleep_for(kPollInterval);
    }
}

void parallelFor(size_t n, int threads, const std::function<void(size_t)> &fn) {
    const size_t workers = std::min(n, static_cast<size_t>(std::max(threads, 1)));
    if (workers <= 1) {
        for (size_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::exception_ptr first;
    std::mutex mutex;
    std::vector<std::thread> pool;
    for (size_t w = 0; w < workers; ++w) {
        pool.emplace_back([&] {
            for (size_t i = next++; i < n; i = next++) {
                try {
                    fn(i);
                } catch (...) {
                    const std::lock_guard lock(mutex);
                    if (!first) first = std::current_exception();
                    next = n;  // the others stop at their next item
                }
            }
        });
    }
    for (std::thread &t : pool) t.join();
    if (first) std::rethrow_exception(first);
}

int ioThreads() {
    return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxIoThreads);
}

}  // namespace weightsync::transport::fs
