// Conditions ("when"): Expression::parse compiles the text once, at validation, into
// a small tree; evaluate() walks that tree for each run and never re-parses. Text is
// at most kMaxBytes long and nests at most kMaxDepth levels of '(' and '!', checked
// by a counter before each descent, so neither parsing nor evaluation can recurse
// without bound, whatever the input.
//
// Semantics: == and != compare any two JSON values by deep equality, numbers by exact
// value whatever their representation (1 == 1.0, -0 == 0); <, <=, >, >= need two
// numbers or two strings (compared bytewise); !, && and || need booleans, and && and
// || do not evaluate their right side once the left decides; the result must be a
// boolean. A reference to a missing key or index is null. A wrong type throws
// InvalidArgument "[loom.when.type]"; nothing else is thrown by evaluation.
#include "model/expression.hpp"

#include <loom/error.hpp>

#include <cmath>
#include <optional>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "model/model.hpp"

namespace loom::detail {

struct Expression::Node {
    enum class Kind : std::uint8_t { literal, reference, negation, all, any, compare };
    enum class Op : std::uint8_t { eq, ne, lt, le, gt, ge };
    Kind kind = Kind::literal;
    Op op = Op::eq;                // compare
    std::uint32_t column = 0;      // 1-based: the operator's, or the operand's first character
    std::uint32_t reference = 0;   // reference: index into Expression::references()
    Json literal;                  // literal
    // negation: one; all (&&), any (||): two or more, so a long chain adds no depth;
    // compare: two.
    std::vector<Node> operands;
};

namespace {

using Node = Expression::Node;
using Index = std::unordered_map<std::string, std::uint32_t>;

// Long enough for any real condition, short enough that an error can quote it whole.
constexpr std::size_t kMaxBytes = 4096;
// Levels of '(' and '!'; each costs a few stack frames when parsing and evaluating.
constexpr int kMaxDepth = 32;

const char* spelling(Node::Op op) {
    switch (op) {
        case Node::Op::eq: return "==";
        case Node::Op::ne: return "!=";
        case Node::Op::lt: return "<";
        case Node::Op::le: return "<=";
        case Node::Op::gt: return ">";
        case Node::Op::ge: return ">=";
    }
    return "?";
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

struct Token {
    enum class Kind : std::uint8_t {
        end, or_, and_, not_, compare, open, close, literal, reference
    };
    Kind kind = Kind::end;
    Node::Op op = Node::Op::eq;    // compare
    std::size_t at = 0;            // offset of the first character
    std::string_view text;         // as written
    Json literal;                  // literal
    Reference reference;           // reference
};

// Recursive descent over a token stream lexed one token ahead, so the first error
// in text order is the one reported.
class Parser {
public:
    Parser(std::string_view text, const std::string& where, const Index& index,
           std::vector<Reference>& references)
        : text_(text), where_(where), index_(index), references_(references) {}

    Node parse() {
        if (text_.find_first_not_of(" \t\r\n") == std::string_view::npos)
            fail(0, text_.empty() ? "is empty where an operand was expected"
                                  : "is blank where an operand was expected");
        Node root = parse_or();
        const Token& next = peek();
        if (next.kind == Token::Kind::close)
            fail(next.at, "has \")\" with no '(' to close");
        if (next.kind != Token::Kind::end) unexpected(next, "an operator or the end");
        return root;
    }

private:
    Node parse_or() { return parse_chain(Token::Kind::or_, Node::Kind::any, &Parser::parse_and); }
    Node parse_and() { return parse_chain(Token::Kind::and_, Node::Kind::all, &Parser::parse_not); }

    // operand (op operand)*, as one node with every operand: a loop, not a recursion.
    Node parse_chain(Token::Kind op, Node::Kind kind, Node (Parser::*operand)()) {
        Node first = (this->*operand)();
        if (peek().kind != op) return first;
        Node chain;
        chain.kind = kind;
        chain.column = first.column;
        chain.operands.push_back(std::move(first));
        while (peek().kind == op) {
            take();
            chain.operands.push_back((this->*operand)());
        }
        return chain;
    }

    Node parse_not() {
        if (peek().kind != Token::Kind::not_) return parse_comparison();
        const Token bang = take();
        enter(bang.at);
        Node node;
        node.kind = Node::Kind::negation;
        node.column = column(bang.at);
        node.operands.push_back(parse_not());
        --depth_;
        return node;
    }

    Node parse_comparison() {
        Node left = parse_operand();
        if (peek().kind != Token::Kind::compare) return left;
        const Token op = take();
        Node node;
        node.kind = Node::Kind::compare;
        node.op = op.op;
        node.column = column(op.at);
        node.operands.push_back(std::move(left));
        node.operands.push_back(parse_operand());
        const Token& next = peek();
        if (next.kind == Token::Kind::compare) {
            fail(next.at, fmt::format("has {} after a comparison; comparisons do not chain, so "
                                      "use parentheses or '&&'",
                                      quote(next.text)));
        }
        return node;
    }

    Node parse_operand() {
        Token token = take();
        Node node;
        node.column = column(token.at);
        switch (token.kind) {
            case Token::Kind::literal:
                node.literal = std::move(token.literal);
                return node;
            case Token::Kind::reference:
                node.kind = Node::Kind::reference;
                node.reference = static_cast<std::uint32_t>(references_.size());
                references_.push_back(std::move(token.reference));
                return node;
            case Token::Kind::open: {
                enter(token.at);
                Node inner = parse_or();
                const Token& next = peek();
                if (next.kind != Token::Kind::close) unexpected(next, "an operator or ')'");
                take();
                --depth_;
                return inner;
            }
            default:
                unexpected(token, "an operand");
        }
    }

    void enter(std::size_t at) {
        if (++depth_ > kMaxDepth)
            fail(at, fmt::format("nests '(' and '!' deeper than the limit of {}", kMaxDepth));
    }

    const Token& peek() {
        if (!next_) next_ = lex();
        return *next_;
    }

    Token take() {
        peek();
        Token token = std::move(*next_);
        next_.reset();
        return token;
    }

    Token lex() {
        while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
        Token token;
        token.at = pos_;
        if (pos_ == text_.size()) return token;
        const char c = text_[pos_];
        const char second = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
        auto symbol = [&](Token::Kind kind, std::size_t length, Node::Op op = Node::Op::eq) {
            token.kind = kind;
            token.op = op;
            token.text = text_.substr(pos_, length);
            pos_ += length;
            return token;
        };
        switch (c) {
            case '(': return symbol(Token::Kind::open, 1);
            case ')': return symbol(Token::Kind::close, 1);
            case '|':
                if (second == '|') return symbol(Token::Kind::or_, 2);
                fail(pos_, "has a single '|'; \"or\" is written '||'");
            case '&':
                if (second == '&') return symbol(Token::Kind::and_, 2);
                fail(pos_, "has a single '&'; \"and\" is written '&&'");
            case '=':
                if (second == '=') return symbol(Token::Kind::compare, 2, Node::Op::eq);
                fail(pos_, "has a single '='; equality is written '=='");
            case '!':
                if (second == '=') return symbol(Token::Kind::compare, 2, Node::Op::ne);
                return symbol(Token::Kind::not_, 1);
            case '<':
                if (second == '=') return symbol(Token::Kind::compare, 2, Node::Op::le);
                return symbol(Token::Kind::compare, 1, Node::Op::lt);
            case '>':
                if (second == '=') return symbol(Token::Kind::compare, 2, Node::Op::ge);
                return symbol(Token::Kind::compare, 1, Node::Op::gt);
            case '\'':
            case '"':
                lex_string(token);
                return token;
            case '$':
                if (second != '{') break;
                lex_reference(token);
                return token;
            default:
                if (c == '-' || is_digit(c)) {
                    lex_number(token);
                    return token;
                }
                if (is_name_start(c)) {
                    lex_name(token);
                    return token;
                }
        }
        fail(pos_, fmt::format("has {}, which is not part of the language",
                               describe_char(static_cast<unsigned char>(c))));
    }

    // 'text' or "text"; a backslash escapes only the quote and itself, so any other
    // text, including JSON-looking escapes, means what it shows.
    void lex_string(Token& token) {
        const char quote_char = text_[pos_];
        std::string value;
        std::size_t i = pos_ + 1;
        for (;; ++i) {
            if (i >= text_.size()) fail(pos_, "has a string that is not terminated");
            const char c = text_[i];
            if (c == quote_char) break;
            if (c == '\\' && i + 1 < text_.size()) {
                const char escaped = text_[++i];
                if (escaped != quote_char && escaped != '\\') {
                    fail(i - 1, fmt::format("has '\\' before {} in a string; only \\{} and "
                                            "\\\\ are escapes in a {}...{} string",
                                            describe_char(static_cast<unsigned char>(escaped)),
                                            quote_char, quote_char, quote_char));
                }
                value += escaped;
                continue;
            }
            value += c;
        }
        token.kind = Token::Kind::literal;
        token.literal = std::move(value);
        token.text = text_.substr(pos_, i + 1 - pos_);
        pos_ = i + 1;
    }

    // JSON's number grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
    // and no letter, digit or '.' right after it.
    void lex_number(Token& token) {
        std::size_t i = pos_;
        auto digits = [&] {
            const std::size_t start = i;
            while (i < text_.size() && is_digit(text_[i])) ++i;
            return i > start;
        };
        auto at = [&](std::size_t k) { return k < text_.size() ? text_[k] : '\0'; };
        bool ok = true;
        if (at(i) == '-') ++i;
        if (at(i) == '0') {
            ++i;
        } else {
            ok = digits();
        }
        if (ok && at(i) == '.') {
            ++i;
            ok = digits();
        }
        if (ok && (at(i) == 'e' || at(i) == 'E')) {
            ++i;
            if (at(i) == '+' || at(i) == '-') ++i;
            ok = digits();
        }
        if (!ok || is_name_char(at(i)) || at(i) == '.') {
            std::size_t end = pos_ + 1;
            while (end < text_.size() && (is_name_char(text_[end]) || text_[end] == '.' ||
                                          text_[end] == '+' || text_[end] == '-'))
                ++end;
            fail(pos_, fmt::format("has the malformed number {}; numbers are written as in JSON, "
                                   "e.g. 42, -1.5, 2e3",
                                   quote(text_.substr(pos_, end - pos_))));
        }
        token.text = text_.substr(pos_, i - pos_);
        try {
            token.literal = Json::parse(token.text);
        } catch (const Json::exception&) {
            // What JSON's grammar allows but a double cannot hold, e.g. 1e999.
            fail(pos_, fmt::format("has the number {}, which is out of range", token.text));
        }
        token.kind = Token::Kind::literal;
        pos_ = i;
    }

    void lex_name(Token& token) {
        std::size_t end = pos_;
        while (end < text_.size() && is_name_char(text_[end])) ++end;
        const std::string_view name = text_.substr(pos_, end - pos_);
        if (name == "true" || name == "false" || name == "null") {
            token.kind = Token::Kind::literal;
            token.literal = name == "null" ? Json() : Json(name == "true");
            token.text = name;
            pos_ = end;
            return;
        }
        std::size_t after = end;
        while (after < text_.size() && is_space(text_[after])) ++after;
        if (after < text_.size() && text_[after] == '(') {
            fail(pos_, fmt::format("calls {}, but function calls are not part of the language",
                                   quote(name)));
        }
        fail(pos_, fmt::format("has the name {}, but names are not part of the language: write "
                               "text in quotes ('{}'), a reference ${{...}}, true, false or null",
                               quote(name), name));
    }

    void lex_reference(Token& token) {
        const std::size_t close = text_.find('}', pos_ + 2);
        if (close == std::string_view::npos) {
            fail_definition(error_id::definition_bad_reference, where_,
                            fmt::format("reference {} is not terminated by '}}'",
                                        quote(text_.substr(pos_))));
        }
        token.text = text_.substr(pos_, close + 1 - pos_);
        token.kind = Token::Kind::reference;
        token.reference = parse_reference(std::string(token.text), where_, index_, RefContext::condition);
        pos_ = close + 1;
    }

    [[noreturn]] void unexpected(const Token& token, std::string_view expected) const {
        if (token.kind == Token::Kind::end)
            fail(token.at, fmt::format("ends where {} was expected", expected));
        fail(token.at, fmt::format("has {} where {} was expected", quote(token.text), expected));
    }

    [[noreturn]] void fail(std::size_t at, std::string_view what) const {
        fail_definition(
            error_id::definition_bad_expression, where_,
            fmt::format("expression {} {} (column {})", quote(text_), what, column(at)));
    }

    static std::uint32_t column(std::size_t at) { return static_cast<std::uint32_t>(at + 1); }

    std::string_view text_;
    const std::string& where_;
    const Index& index_;
    std::vector<Reference>& references_;
    std::size_t pos_ = 0;          // the next character to lex
    std::optional<Token> next_;    // lexed, not yet taken
    int depth_ = 0;                // '(' and '!' being parsed
};

enum class Order { less, equal, greater, unordered };

template <class T>
Order order_of(T a, T b) {
    return a < b ? Order::less : b < a ? Order::greater : Order::equal;
}

Order reversed(Order o) {
    return o == Order::less ? Order::greater : o == Order::greater ? Order::less : o;
}

// Integers against doubles without rounding the integer to a double, so 2^53 + 1 is
// not equal to 2^53 written as 9007199254740992.0.
template <class Int>
Order order_of_integer(Int n, double d) {
    if (std::isnan(d)) return Order::unordered;
    constexpr double below = std::is_signed_v<Int> ? -9223372036854775808.0 : 0.0;  // -2^63 or 0
    constexpr double above = std::is_signed_v<Int> ? 9223372036854775808.0           // 2^63
                                                   : 18446744073709551616.0;         // 2^64
    if (d < below) return Order::greater;
    if (d >= above) return Order::less;
    const double whole = std::trunc(d);   // in Int's range: converts exactly
    const auto w = static_cast<Int>(whole);
    if (n != w) return order_of(n, w);
    return order_of(0.0, d - whole);       // the fraction is exact too
}

Order order_of_numbers(const Json& a, const Json& b) {
    using T = Json::value_t;
    const T ta = a.type(), tb = b.type();
    if (ta == T::number_float && tb == T::number_float) {
        const double x = a.get<double>(), y = b.get<double>();
        if (std::isnan(x) || std::isnan(y)) return Order::unordered;
        return order_of(x, y);
    }
    if (ta == T::number_float) return reversed(order_of_numbers(b, a));
    if (ta == T::number_unsigned) {
        const auto u = a.get<std::uint64_t>();
        if (tb == T::number_unsigned) return order_of(u, b.get<std::uint64_t>());
        if (tb == T::number_float) return order_of_integer(u, b.get<double>());
        return reversed(order_of_numbers(b, a));
    }
    const auto i = a.get<std::int64_t>();
    if (tb == T::number_integer) return order_of(i, b.get<std::int64_t>());
    if (tb == T::number_float) return order_of_integer(i, b.get<double>());
    if (i < 0) return Order::less;
    return order_of(static_cast<std::uint64_t>(i), b.get<std::uint64_t>());
}

bool equal_scalars(const Json& a, const Json& b) {
    if (a.is_number() && b.is_number()) return order_of_numbers(a, b) == Order::equal;
    return a == b;
}

// Deep equality by an explicit stack: a value's nesting is the host's data, not the
// expression's, so it must not cost stack frames. Objects compare as key sets.
bool equal(const Json& a, const Json& b) {
    if (!a.is_structured() && !b.is_structured()) return equal_scalars(a, b);
    std::vector<std::pair<const Json*, const Json*>> pending{{&a, &b}};
    while (!pending.empty()) {
        const auto [x, y] = pending.back();
        pending.pop_back();
        if (x->is_object() && y->is_object()) {
            if (x->size() != y->size()) return false;
            for (auto it = x->begin(); it != x->end(); ++it) {
                auto found = y->find(it.key());
                if (found == y->end()) return false;
                pending.emplace_back(&*it, &*found);
            }
        } else if (x->is_array() && y->is_array()) {
            if (x->size() != y->size()) return false;
            for (std::size_t k = 0; k < x->size(); ++k) pending.emplace_back(&(*x)[k], &(*y)[k]);
        } else if (x->is_structured() || y->is_structured() || !equal_scalars(*x, *y)) {
            return false;
        }
    }
    return true;
}

const Json& boolean(bool b) {
    static const Json yes(true), no(false);
    return b ? yes : no;
}

const Json& null_value() {
    static const Json null;
    return null;
}

class Evaluator {
public:
    Evaluator(const std::string& text, const std::vector<Reference>& references,
              const Expression::Lookup& value_of)
        : text_(text), references_(references), value_of_(value_of) {}

    // Recurses once per tree level; parsing bounded the tree's depth.
    const Json& eval(const Node& node) const {
        switch (node.kind) {
            case Node::Kind::literal: return node.literal;
            case Node::Kind::reference: {
                const Json* value = value_of_(node.reference);
                return value ? *value : null_value();
            }
            case Node::Kind::negation: {
                const Node& operand = node.operands[0];
                const Json& value = eval(operand);
                if (!value.is_boolean())
                    fail(fmt::format("'!' needs a boolean, got {}", describe(operand, value)),
                         node.column);
                return boolean(!value.get<bool>());
            }
            case Node::Kind::all:
            case Node::Kind::any: {
                // && stops at the first false, || at the first true.
                const bool decides = node.kind == Node::Kind::any;
                for (const Node& operand : node.operands) {
                    const Json& value = eval(operand);
                    if (!value.is_boolean()) {
                        fail(fmt::format("'{}' needs booleans, got {}", decides ? "||" : "&&",
                                         describe(operand, value)),
                             operand.column);
                    }
                    if (value.get<bool>() == decides) return boolean(decides);
                }
                return boolean(!decides);
            }
            case Node::Kind::compare: return boolean(compare(node));
        }
        return null_value();
    }

    bool result(const Node& root) const {
        const Json& value = eval(root);
        if (!value.is_boolean())
            fail(fmt::format("the result must be a boolean, got {}", describe(root, value)));
        return value.get<bool>();
    }

private:
    bool compare(const Node& node) const {
        const Json& a = eval(node.operands[0]);
        const Json& b = eval(node.operands[1]);
        if (node.op == Node::Op::eq) return equal(a, b);
        if (node.op == Node::Op::ne) return !equal(a, b);
        Order order;
        if (a.is_number() && b.is_number()) {
            order = order_of_numbers(a, b);
        } else if (a.is_string() && b.is_string()) {
            // std::string compares as unsigned char: bytewise.
            const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
            order = c < 0 ? Order::less : c > 0 ? Order::greater : Order::equal;
        } else {
            fail(fmt::format("'{}' needs two numbers or two strings, got {} and {}",
                             spelling(node.op), describe(node.operands[0], a),
                             describe(node.operands[1], b)),
                 node.column);
        }
        switch (node.op) {
            case Node::Op::lt: return order == Order::less;
            case Node::Op::le: return order == Order::less || order == Order::equal;
            case Node::Op::gt: return order == Order::greater;
            case Node::Op::ge: return order == Order::greater || order == Order::equal;
            default: return false;
        }
    }

    // "number", or "null from ${input.flag}": a missing value is easier to find by name.
    std::string describe(const Node& node, const Json& value) const {
        if (node.kind != Node::Kind::reference) return value.type_name();
        return fmt::format("{} from {}", value.type_name(), references_[node.reference].text);
    }

    // column 0: the whole expression, no column to name.
    [[noreturn]] void fail(const std::string& what, std::uint32_t column = 0) const {
        std::string message = fmt::format("expression {}: {}", quote(text_), what);
        if (column) message += fmt::format(" (column {})", column);
        throw InvalidArgument(error_id::when_type, message);
    }

    const std::string& text_;
    const std::vector<Reference>& references_;
    const Expression::Lookup& value_of_;
};

}  // namespace

Expression Expression::parse(std::string_view text, const std::string& where, const Index& index) {
    if (text.size() > kMaxBytes) {
        fail_definition(error_id::definition_bad_expression, where,
                        fmt::format("expression starting {} is {} bytes; the limit is {}",
                                    quote(text.substr(0, 32)), text.size(), kMaxBytes));
    }
    Expression expression;
    expression.text_ = std::string(text);
    Parser parser(expression.text_, where, index, expression.references_);
    expression.root_ = std::make_shared<const Node>(parser.parse());
    return expression;
}

const std::vector<Reference>& Expression::references() const noexcept { return references_; }

bool Expression::evaluate(const Lookup& value_of) const {
    // Only a default-constructed Expression has no tree: it is no condition at all.
    if (!root_) return true;
    return Evaluator(text_, references_, value_of).result(*root_);
}

const std::string& Expression::text() const noexcept { return text_; }

}  // namespace loom::detail
