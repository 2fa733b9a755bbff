// What the expression fuzzer (tests/fuzz/fuzz_expression.cpp) checks for every
// input, shared with the ctest that replays its seed corpus and every crash it
// found (tests/reliability/fuzz_regressions_test.cpp), so both hold the same property.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <loom/error.hpp>

#include "model/expression.hpp"
#include "model/model.hpp"

namespace loom::fuzz {

struct ExpressionCheck {
    /// Empty if the input behaved; otherwise what went wrong.
    std::string problem;
    /// The DefinitionError id if the input was refused, empty if it parsed.
    std::string error_id;
};

namespace detail {

using loom::detail::Expression;

inline const std::unordered_map<std::string, std::uint32_t>& step_index() {
    static const std::unordered_map<std::string, std::uint32_t> index{{"a", 0}, {"b", 1}};
    return index;
}

/// What a lookup may return: missing (nullptr), each JSON type, numbers of every
/// representation and edge (NaN only a host can put in a Json), nested values.
inline const std::vector<std::optional<Json>>& lookup_values() {
    static const std::vector<std::optional<Json>> values{
        std::nullopt,
        Json(nullptr),
        Json(true),
        Json(false),
        Json(0),
        Json(1),
        Json(1u),
        Json(1.0),
        Json(-1),
        Json(0.5),
        Json(std::numeric_limits<std::uint64_t>::max()),
        Json(std::numeric_limits<std::int64_t>::min()),
        Json(1e300),
        Json(std::nan("")),
        Json(""),
        Json("completed"),
        Json("a"),
        Json::parse(R"({"a": 1, "b": [true, null]})"),
        Json::parse(R"({"b": [true, null], "a": 1.0})"),
        Json::parse(R"([1, "a", [[]]])"),
        Json::array(),
    };
    return values;
}

/// The outcome of one evaluation: a boolean, or the InvalidArgument message.
struct Outcome {
    std::optional<bool> result;
    std::string error;
    bool operator==(const Outcome& o) const { return result == o.result && error == o.error; }
};

/// Evaluates with references()[i] bound to lookup_values()[(i * 7 + round) % n];
/// checks each index is in range and asked at most once. Returns the outcome, or
/// sets `problem`.
inline Outcome evaluate(const Expression& expression, std::size_t round, std::string& problem) {
    const auto& values = lookup_values();
    std::vector<int> asked(expression.references().size(), 0);
    Outcome out;
    try {
        out.result = expression.evaluate([&](std::size_t i) -> const Json* {
            if (i >= asked.size()) {
                problem = "evaluate asked for reference " + std::to_string(i) + " of " +
                          std::to_string(asked.size());
                return nullptr;
            }
            if (++asked[i] > 1)
                problem = "evaluate asked for reference " + std::to_string(i) + " twice";
            const auto& value = values[(i * 7 + round) % values.size()];
            return value ? &*value : nullptr;
        });
    } catch (const InvalidArgument& e) {
        const std::string prefix =
            "[loom.when.type] expression " + loom::detail::quote(expression.text()) + ": ";
        const std::string_view message = e.what();
        if (e.id() != loom::error_id::when_type || message.substr(0, prefix.size()) != prefix)
            problem = "malformed evaluation error: " + std::string(e.what());
        out.error = e.what();
    } catch (const std::exception& e) {
        problem = std::string("evaluate threw something other than InvalidArgument: ") + e.what();
    } catch (...) {
        problem = "evaluate threw a non-standard exception";
    }
    return out;
}

/// Parses `text`; an error must be a well-formed bad_expression or bad_reference
/// DefinitionError, and a bad_expression one that names a column names one inside
/// the text (or just past its end).
inline std::optional<Expression> parse(std::string_view text, ExpressionCheck& out) {
    const std::string where = "/steps/2/when";
    try {
        return Expression::parse(text, where, step_index());
    } catch (const DefinitionError& e) {
        const std::string message = e.what();
        const std::string prefix = "[" + e.id() + "] " + where + ": ";
        const bool expression = e.id() == loom::error_id::definition_bad_expression;
        if ((!expression && e.id() != loom::error_id::definition_bad_reference) ||
            message.compare(0, prefix.size(), prefix) != 0 ||
            message.compare(prefix.size(), 11, expression ? "expression " : "reference \"") != 0) {
            out.problem = "malformed parse error: " + message;
            return std::nullopt;
        }
        const std::size_t column = message.rfind("(column ");
        if (expression && column != std::string::npos && message.back() == ')') {
            const unsigned long n = std::stoul(message.substr(column + 8));
            if (n < 1 || n > text.size() + 1) out.problem = "column out of range: " + message;
        }
        out.error_id = e.id();
    } catch (const std::exception& e) {
        out.problem = std::string("parse threw something other than DefinitionError: ") + e.what();
    } catch (...) {
        out.problem = "parse threw a non-standard exception";
    }
    return std::nullopt;
}

inline bool same_references(const Expression& a, const Expression& b) {
    if (a.references().size() != b.references().size()) return false;
    for (std::size_t i = 0; i < a.references().size(); ++i) {
        const auto& x = a.references()[i];
        const auto& y = b.references()[i];
        if (x.text != y.text || x.root != y.root || x.step != y.step ||
            x.field != y.field || x.path != y.path)
            return false;
    }
    return true;
}

}  // namespace detail

/// Parses `text` under a fixed step index ("a", "b"). If it parses: a second parse
/// gives the same references; they appear in the text in order; every evaluation
/// (with lookups cycling through missing, null, booleans, numbers, strings and
/// structures) gives a boolean or a loom.when.type InvalidArgument, and the same
/// one twice; and "!(text)", where it parses, gives the negation.
inline ExpressionCheck check_expression(std::string_view text) {
    ExpressionCheck out;
    auto fail = [&](const std::string& what) {
        out.problem = what;
        return out;
    };
    const auto first = detail::parse(text, out);
    if (!first) return out;
    const auto second = detail::parse(text, out);
    if (!second) return fail("a second parse refused what the first accepted: " + out.problem);
    if (first->text() != text) return fail("text() is not the text parsed");
    if (!detail::same_references(*first, *second)) return fail("two parses gave other references");
    std::size_t at = 0;
    for (const auto& ref : first->references()) {
        at = text.find(ref.text, at);
        if (at == std::string_view::npos)
            return fail("reference " + ref.text + " is not in the text, in order");
        at += ref.text.size();
    }

    // Negating through "!(...)" must not change what is asked or whether it fails.
    const std::string wrapped = "!(" + std::string(text) + ")";
    ExpressionCheck wrapped_check;
    const auto negated = detail::parse(wrapped, wrapped_check);
    if (!wrapped_check.problem.empty()) return fail("!(text): " + wrapped_check.problem);
    if (!negated && wrapped_check.error_id != loom::error_id::definition_bad_expression)
        return fail("!(text) refused with " + wrapped_check.error_id);
    if (negated && !detail::same_references(*first, *negated))
        return fail("!(text) has other references");

    std::string problem;
    for (std::size_t round = 0; round < detail::lookup_values().size(); ++round) {
        const detail::Outcome once = detail::evaluate(*first, round, problem);
        if (!problem.empty()) return fail(problem);
        const detail::Outcome again = detail::evaluate(*second, round, problem);
        if (!problem.empty()) return fail(problem);
        if (!(once == again)) return fail("two evaluations differ");
        if (!negated) continue;
        const detail::Outcome inverse = detail::evaluate(*negated, round, problem);
        if (!problem.empty()) return fail("!(text): " + problem);
        if (once.result.has_value() != inverse.result.has_value() ||
            (once.result && *once.result == *inverse.result))
            return fail("!(text) is not the negation (round " + std::to_string(round) + ")");
    }
    return out;
}

}  // namespace loom::fuzz
