#include "control/frame.h"

#include "common/error.h"

namespace weightsync::control {
namespace {

constexpr size_t kHeaderBytes = 4;
constexpr size_t kKeepCapacity = 1U << 20;  // an emptied buffer larger than this is released

void clearBuffer(std::string &buffer) {
    if (buffer.capacity() > kKeepCapacity) {
        std::string().swap(buffer);
    } else {
        buffer.clear();
    }
}

}  // namespace

std::string encodeFrame(std::string_view payload, uint32_t max_bytes) {
    check(payload.size() <= max_bytes, Errc::kInvalidArgument,
          "message of {} bytes exceeds the {} byte frame limit", payload.size(), max_bytes);
    const auto size = static_cast<uint32_t>(payload.size());
    std::string frame;
    frame.reserve(kHeaderBytes + payload.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
        frame.push_back(static_cast<char>((size >> shift) & 0xffU));
    }
    frame.append(payload);
    return frame;
}

void FrameReader::append(std::string_view bytes) {
    buffer_.append(bytes);
    (void)announced();  // refuse an oversized frame as soon as its header is in
}

std::optional<uint32_t> FrameReader::announced() const {
    if (buffer_.size() - start_ < kHeaderBytes) return std::nullopt;
    uint32_t size = 0;
    for (size_t i = 0; i < kHeaderBytes; ++i) {
        size = (size << 8) | static_cast<uint8_t>(buffer_[start_ + i]);
    }
    check(size <= max_bytes_, Errc::kProtocol,
          "a frame of {} bytes was announced; the limit is {} bytes", size, max_bytes_);
    return size;
}

std::optional<std::string> FrameReader::next() {
    const std::optional<uint32_t> size = announced();
    if (!size || buffer_.size() - start_ - kHeaderBytes < *size) return std::nullopt;
    std::string payload = buffer_.substr(start_ + kHeaderBytes, *size);
    start_ += kHeaderBytes + *size;
    if (start_ == buffer_.size()) {
        clearBuffer(buffer_);
        start_ = 0;
    } else if (start_ > buffer_.size() / 2) {
        buffer_.erase(0, start_);  // keep the dead prefix from growing without bound
        start_ = 0;
    }
    return payload;
}

}  // namespace weightsync::control
