#pragma once
// Element types that cross the trainer/inference boundary, and bf16 rounding.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync {

enum class DType : uint8_t { kBF16, kF32, kF8E4M3, kU8 };

/// FP8 (e4m3) tensors carry one fp32 scale per kFp8BlockSize x kFp8BlockSize block of values;
/// the last block of a row or of a column may be partial.
inline constexpr int64_t kFp8BlockSize = 128;
/// Bytes of one block scale (an fp32).
inline constexpr int64_t kScaleBytes = 4;
static_assert(kScaleBytes == sizeof(float));

size_t dtypeSize(DType dtype);
std::string_view dtypeName(DType dtype);
/// Parses "bf16", "fp32"/"f32"/"float32", "fp8_e4m3"/"float8_e4m3fn", "u8"; throws on anything
/// else.
DType parseDType(std::string_view name);

using Shape = std::vector<int64_t>;

int64_t numel(const Shape &shape);
std::string shapeString(const Shape &shape);

/// Round-to-nearest-even fp32 -> bf16 bits. NaN stays NaN (quiet), infinities stay infinite.
inline uint16_t f32ToBf16Bits(float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7f800000U) == 0x7f800000U && (bits & 0x007fffffU) != 0) {
        return static_cast<uint16_t>((bits >> 16) | 0x0040U);
    }
    const uint32_t lsb = (bits >> 16) & 1U;
    bits += 0x7fffU + lsb;
    return static_cast<uint16_t>(bits >> 16);
}

inline float bf16BitsToF32(uint16_t bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value = 0;
    std::memcpy(&value, &wide, sizeof value);
    return value;
}

/// The value a trainer's forward pass sees: fp32 rounded to bf16 and widened back.
inline float roundToBf16(float value) {
    return bf16BitsToF32(f32ToBf16Bits(value));
}

}  // namespace weightsync
