// Conditions ("when"): a small, safe expression language, parsed once at
// validation and evaluated by the executor. Internal.
//
//   expr       := or
//   or         := and ("||" and)*
//   and        := not ("&&" not)*
//   not        := "!" not | comparison
//   comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//   operand    := literal | reference | "(" expr ")"
//   literal    := number | 'text' | "text" | true | false | null
//   reference  := ${input...} | ${steps.ID.output...} | ${steps.ID.status} | ${steps.ID.error}
//
// No function calls, no assignment, nothing that runs code; bounded length and
// nesting, so evaluation is cheap and cannot recurse without limit.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <loom/json.hpp>

#include "model/plan.hpp"

namespace loom::detail {

class Expression {
public:
    /// Parses `text`. Throws DefinitionError "[loom.definition.bad_expression]
    /// <where>: ..." naming the offending position, or "bad_reference" for a
    /// malformed reference or an unknown step.
    static Expression parse(std::string_view text, const std::string& where,
                            const std::unordered_map<std::string, std::uint32_t>& index);

    /// Every reference, in text order; evaluate() asks for their values by index.
    const std::vector<Reference>& references() const noexcept;

    /// The value of references()[i], or nullptr when it does not exist (a
    /// missing key or index): it then compares as null.
    using Lookup = std::function<const Json*(std::size_t i)>;

    /// Evaluates the condition. Throws InvalidArgument "[loom.when.type]" when an
    /// operand has the wrong type (e.g. "!" of a number, "<" between a number and
    /// a string) or the result is not a boolean; the message quotes the text.
    bool evaluate(const Lookup& value_of) const;

    const std::string& text() const noexcept;

    struct Node;   // the compiled tree (expression.cpp)

private:
    std::shared_ptr<const Node> root_;
    std::vector<Reference> references_;
    std::string text_;
};

}  // namespace loom::detail
