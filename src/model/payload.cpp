#include "model/payload.hpp"

#include <vector>

#include <fmt/format.h>

#include <loom/error.hpp>

namespace loom::detail {
namespace {

/// Depth of the deepest container, counted without recursion; stops early once
/// past `limit`.
std::size_t depth_of(const Json& root, std::size_t limit) {
    if (!root.is_structured()) return 0;
    std::vector<std::pair<const Json*, std::size_t>> stack{{&root, 1}};
    std::size_t deepest = 0;
    while (!stack.empty()) {
        auto [value, depth] = stack.back();
        stack.pop_back();
        deepest = std::max(deepest, depth);
        if (deepest > limit) return deepest;
        for (const auto& child : *value)
            if (child.is_structured()) stack.emplace_back(&child, depth + 1);
    }
    return deepest;
}

}  // namespace

void check_payload(const Json& value, const PayloadLimits& limits, const std::string& what) {
    if (!value.is_string() && !value.is_structured()) return;   // scalars always fit
    if (depth_of(value, limits.max_depth) > limits.max_depth)
        throw InvalidArgument(error_id::payload_too_deep,
                              fmt::format("{} is nested deeper than {} levels", what, limits.max_depth));
    std::string text;
    try {
        text = value.dump();
    } catch (const Json::type_error& e) {
        throw InvalidArgument(error_id::payload_not_utf8, fmt::format("{} cannot be stored: {}", what, e.what()));
    }
    if (text.size() > limits.max_bytes)
        throw InvalidArgument(error_id::payload_too_large,
                              fmt::format("{} is {} bytes as JSON; the limit is {}", what, text.size(),
                                          limits.max_bytes));
}

}  // namespace loom::detail
