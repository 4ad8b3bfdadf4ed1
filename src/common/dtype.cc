#include "common/dtype.h"

#include "common/error.h"

#include <fmt/format.h>

namespace weightsync {

size_t dtypeSize(DType dtype) {
    switch (dtype) {
        case DType::kBF16: return 2;
        case DType::kF32: return 4;
        case DType::kF8E4M3:
        case DType::kU8: return 1;
    }
    fail(Errc::kInternal, "unknown dtype {}", static_cast<int>(dtype));
}

std::string_view dtypeName(DType dtype) {
    switch (dtype) {
        case DType::kBF16: return "bf16";
        case DType::kF32: return "fp32";
        case DType::kF8E4M3: return "fp8_e4m3";
        case DType::kU8: return "u8";
    }
    return "unknown";
}

DType parseDType(std::string_view name) {
    if (name == "bf16" || name == "bfloat16") return DType::kBF16;
    if (name == "fp32" || name == "f32" || name == "float32") return DType::kF32;
    if (name == "fp8_e4m3" || name == "float8_e4m3fn" || name == "fp8") return DType::kF8E4M3;
    if (name == "u8" || name == "uint8") return DType::kU8;
    fail(Errc::kInvalidArgument, "unknown dtype '{}' (expected bf16, fp32, fp8_e4m3 or u8)", name);
}

int64_t numel(const Shape &shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string shapeString(const Shape &shape) {
    return fmt::format("[{}]", fmt::join(shape, ","));
}

}  // namespace weightsync
