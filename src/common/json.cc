#include "common/json.h"

#include <utility>
#include <vector>

namespace weightsync {
namespace {

/// Offset of the first bracket nested deeper than max_depth outside a string, or npos. Does not
/// validate anything else: the parser does that afterwards.
size_t tooDeepAt(std::string_view text, int max_depth) {
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return i;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return std::string_view::npos;
}

}  // namespace

nlohmann::json parseJson(std::string_view text, std::string_view what, Errc code, int max_depth) {
    const size_t deep = tooDeepAt(text, max_depth);
    check(deep == std::string_view::npos, code,
          "{}: JSON nested deeper than {} levels (at byte {} of {})", what, max_depth, deep,
          text.size());
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        fail(code, "{}: not valid JSON ({} bytes): {}", what, text.size(), e.what());
    }
}

void checkJsonDepth(const nlohmann::json &value, std::string_view what, Errc code, int max_depth) {
    std::vector<std::pair<const nlohmann::json *, int>> stack{{&value, 0}};
    while (!stack.empty()) {
        const auto [node, depth] = stack.back();
        stack.pop_back();
        if (!node->is_structured()) continue;
        check(depth < max_depth, code, "{}: JSON nested deeper than {} levels", what, max_depth);
        for (const nlohmann::json &child : *node) stack.emplace_back(&child, depth + 1);
    }
}

void checkNoFloats(const nlohmann::json &value, std::string_view what, Errc code) {
    std::vector<const nlohmann::json *> stack{&value};
    while (!stack.empty()) {
        const nlohmann::json *node = stack.back();
        stack.pop_back();
        if (node->is_number_float()) {
            fail(code, "{}: {} is not an integer (only integers here)", what, node->dump());
        }
        if (node->is_structured()) {
            for (const nlohmann::json &child : *node) stack.push_back(&child);
        }
    }
}

}  // namespace weightsync
