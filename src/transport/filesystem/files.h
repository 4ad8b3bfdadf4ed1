#pragma once
// File I/O of the filesystem transport: RAII file descriptors with positioned reads and writes,
// durable renames (fsync of the file and of its directory), XXH3-64 hashes of file ranges, work
// on a few threads, and a bounded wait for a file to appear. Every failure is an Error naming
// the path.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct XXH3_state_s;  // xxhash.h's XXH3_state_t (the header stays out of this one)

namespace weightsync::transport::fs {

/// An XXH3-64 (seed 0) of bytes given in pieces: a checkpoint range, read or written a block at
/// a time. Error(kInternal) when its state cannot be allocated.
class Xxh3Stream {
  public:
    Xxh3Stream();
    void update(const void *data, size_t bytes);
    [[nodiscard]] uint64_t digest() const;

  private:
    struct Free {
        void operator()(XXH3_state_s *state) const;
    };
    std::unique_ptr<XXH3_state_s, Free> state_;
};

/// An open file (closed by the destructor).
class File {
  public:
    File() = default;
    ~File();
    File(File &&other) noexcept;
    File &operator=(File &&other) noexcept;
    File(const File &) = delete;
    File &operator=(const File &) = delete;

    /// Opens `path` for writing (and reading), creating it if needed, and sets its size to `size`
    /// (existing bytes below it are kept: several writers may open the same file). Error(kIo)
    /// naming it.
    static File create(const std::string &path, int64_t size);
    /// Opens `path` for reading. Error(kNotFound) when it does not exist, kIo otherwise.
    static File openRead(const std::string &path);
    /// Opens a directory (for sync()).
    static File openDirectory(const std::string &path);

    /// Writes / reads exactly `bytes` at `offset` (retrying short transfers). A read past the
    /// end is Error(kCorruption) naming the file (it is shorter than its writer made it).
    void writeAt(int64_t offset, const void *data, size_t bytes) const;
    void readAt(int64_t offset, void *out, size_t bytes) const;
    /// Starts writing back the range's dirty pages to the device without waiting (Linux's
    /// sync_file_range; a no-op where the filesystem has no device, e.g. tmpfs), so that a
    /// later sync() finds little left to do.
    void startWriteback(int64_t offset, size_t bytes) const;
    /// fsync.
    void sync() const;
    [[nodiscard]] int64_t size() const;
    /// XXH3-64 (seed 0) of bytes [offset, offset + bytes) (the file's whole range: offset 0,
    /// bytes size()). Error(kCorruption) when the file is shorter.
    [[nodiscard]] uint64_t hashRange(int64_t offset, int64_t bytes) const;
    [[nodiscard]] const std::string &path() const { return path_; }
    [[nodiscard]] bool isOpen() const { return fd_ >= 0; }

  private:
    File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_ = -1;
    std::string path_;
};

/// Creates a directory and its parents (existing ones are fine).
void makeDirectories(const std::string &path);
/// fsync of a directory: its entries (new files, renames) are durable.
void syncDirectory(const std::string &path);
/// rename(2): atomically replaces `to`.
void renameFile(const std::string &from, const std::string &to);
/// Removes a file if it exists.
void removeFile(const std::string &path);
/// Writes `path` so that it appears whole or not at all: `<path>.tmp`, fsync, rename, fsync of
/// the directory.
void writeFileAtomically(const std::string &path, std::string_view content);
/// The contents of a small file (at most max_bytes, else Error(kCorruption)).
std::string readSmallFile(const std::string &path, int64_t max_bytes);
/// Polls for `path` every few milliseconds until it exists; Error(kTimeout) with `what` at the
/// deadline.
void waitForFile(const std::string &path, std::chrono::steady_clock::time_point deadline,
                 const std::string &what);

/// Runs fn(0..n-1) on up to `threads` threads; rethrows the first exception after all ended.
void parallelFor(size_t n, int threads, const std::function<void(size_t)> &fn);
/// Threads for I/O work: the machine's cores, at most 8.
int ioThreads();

}  // namespace weightsync::transport::fs
