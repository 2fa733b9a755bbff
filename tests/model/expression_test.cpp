// Conditions ("when"): how expressions parse (every error with its exact message,
// the length and depth bounds) and what they evaluate to (operators, precedence,
// short-circuits, equality across number types, missing references, type errors).
#include <catch2/catch.hpp>

#include <loom/error.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "model/expression.hpp"

using loom::Json;
using loom::detail::Expression;
using loom::detail::Reference;

namespace {

const std::unordered_map<std::string, std::uint32_t> kIndex{{"a", 0}, {"b-2", 1}};

Expression parse(std::string_view text) { return Expression::parse(text, "/steps/2/when", kIndex); }

// Evaluates `text` with references()[i] bound to values[i]; past the end, nullptr.
bool eval(std::string_view text, const std::vector<Json>& values = {}) {
    return parse(text).evaluate(
        [&](std::size_t i) -> const Json* { return i < values.size() ? &values[i] : nullptr; });
}

// The DefinitionError message parse() throws for `text`, or "" if it parses.
std::string parse_error(std::string_view text) {
    try {
        parse(text);
    } catch (const loom::DefinitionError& e) {
        return e.what();
    }
    return "";
}

const std::string kBad = "[loom.definition.bad_expression] /steps/2/when: expression ";

}  // namespace

TEST_CASE("Literals, comparisons and logic evaluate as written", "[model]") {
    CHECK(eval("true"));
    CHECK_FALSE(eval("false"));
    CHECK(eval("  ( true )\t\n"));

    CHECK(eval("1 == 1"));
    CHECK_FALSE(eval("1 == 2"));
    CHECK(eval("1 != 2"));
    CHECK_FALSE(eval("'a' != 'a'"));
    CHECK(eval("null == null"));
    CHECK(eval("true != false"));
    CHECK_FALSE(eval("'1' == 1"));   // no conversions between types
    CHECK_FALSE(eval("null == false"));

    CHECK(eval("1 < 2"));
    CHECK_FALSE(eval("2 < 2"));
    CHECK(eval("2 <= 2"));
    CHECK_FALSE(eval("3 <= 2"));
    CHECK(eval("3 > 2"));
    CHECK_FALSE(eval("2 > 2"));
    CHECK(eval("2 >= 2"));
    CHECK_FALSE(eval("1 >= 2"));
    CHECK(eval("-1.5e1 < -14"));
    CHECK(eval("1E2 == 100"));
    CHECK(eval("2.5e-1 == 0.25"));

    CHECK(eval("!false"));
    CHECK_FALSE(eval("!true"));
    CHECK(eval("!!true"));
    CHECK(eval("true && true"));
    CHECK_FALSE(eval("true && false"));
    CHECK_FALSE(eval("true && true && false"));
    CHECK(eval("false || true"));
    CHECK_FALSE(eval("false || false || false"));
    CHECK(eval("1<2&&'b'>'a'"));   // whitespace is optional
}

TEST_CASE("Strings: both quotes, two escapes, bytewise order", "[model]") {
    CHECK(eval(R"('it\'s' == "it's")"));
    CHECK(eval(R"("say \"hi\"" == 'say "hi"')"));
    CHECK(eval(R"('back\\slash' == "back\\slash")"));
    CHECK(eval(R"('\\' == "\\")"));
    // Anything else is the text itself: no JSON escapes, no interpolation.
    CHECK(eval(R"('${input.a}' != "")"));
    CHECK(eval("'' == \"\""));

    CHECK(eval("'a' < 'b'"));
    CHECK(eval("'B' < 'a'"));      // bytes, not letters
    CHECK(eval("'ab' < 'abc'"));
    CHECK(eval("'' < 'a'"));
    CHECK(eval("'\xC3\xA9' > 'z'"));   // "é" is the bytes C3 A9: above any ASCII byte
    CHECK(eval("'10' < '9'"));
}

TEST_CASE("Precedence: comparison over &&, && over ||, and '!' takes a whole comparison", "[model]") {
    CHECK(eval("true || false && false"));       // true || (false && false)
    CHECK_FALSE(eval("(true || false) && false"));
    CHECK(eval("false && false || true"));       // (false && false) || true
    CHECK_FALSE(eval("false && (false || true)"));
    CHECK(eval("1 == 1 && 2 == 2"));             // comparisons bind tighter than &&
    CHECK(eval("1 == 2 || 'x' == 'x'"));
    CHECK(eval("!false && true"));
    CHECK_FALSE(eval("!(false || true)"));
    CHECK(eval("(1 == 1) == true"));
    // '!' takes the comparison after it whole (the grammar's not := "!" not |
    // comparison): "!n > 3" is !(n > 3). On booleans that is the same as (!a) == b.
    CHECK(eval("!${input.n} > 3", {Json(2)}));
    CHECK_FALSE(eval("!${input.n} > 3", {Json(5)}));
    CHECK(eval("!${input.a} == ${input.b}", {Json(true), Json(false)}));
    CHECK_FALSE(eval("!${input.a} == ${input.b}", {Json(true), Json(true)}));
}

TEST_CASE("&& and || do not evaluate what cannot change the result", "[model]") {
    // ${input.t} is true, ${input.f} false, ${input.n} 42; `asked` lists the lookups.
    std::vector<std::string> asked;
    auto run = [&](std::string_view text) {
        asked.clear();
        const Expression e = parse(text);
        return e.evaluate([&](std::size_t i) -> const Json* {
            static const Json t(true), f(false), n(42);
            const std::string& name = e.references()[i].path.at(0);
            asked.push_back(name);
            return name == "t" ? &t : name == "f" ? &f : &n;
        });
    };
    using Names = std::vector<std::string>;
    CHECK_FALSE(run("${input.t} && ${input.f} && ${input.n}"));
    CHECK(asked == Names{"t", "f"});
    CHECK(run("${input.f} || ${input.t} || ${input.n}"));
    CHECK(asked == Names{"f", "t"});
    CHECK(run("${input.f} && ${input.n} || ${input.t} && ${input.t} || ${input.n}"));
    CHECK(asked == Names{"f", "t", "t"});
    // What is not evaluated is not type-checked either.
    CHECK_FALSE(run("false && ${input.n}"));
    CHECK(asked.empty());
    CHECK(run("!${input.f} || ${input.n} < 'x'"));
    CHECK(asked == Names{"f"});
    // Comparisons evaluate both sides; each reference is asked once per evaluation.
    CHECK_FALSE(run("${input.t} == ${input.f}"));
    CHECK(asked == Names{"t", "f"});
    CHECK(run("${input.n} == ${input.n}"));
    CHECK(asked == Names{"n", "n"});
}

TEST_CASE("Numbers compare by value across integer, unsigned and float", "[model]") {
    const Json i(1), u(1u), f(1.0);
    CHECK(eval("${input.i} == ${input.u} && ${input.u} == ${input.f} && ${input.f} == ${input.i}",
               {i, u, u, f, f, i}));
    CHECK(eval("1 == 1.0"));
    CHECK(eval("-0 == 0.0"));
    CHECK(eval("${input.i} < ${input.u}", {Json(-1), Json(0u)}));
    CHECK(eval("${input.f} < ${input.u}", {Json(0.5), Json(1u)}));
    CHECK(eval("${input.i} > ${input.f}", {Json(1), Json(0.5)}));
    CHECK(eval("18446744073709551615 > 9223372036854775807"));
    CHECK(eval("-9223372036854775808 < 18446744073709551615"));
    CHECK(eval("18446744073709551615 < 1e20"));
    CHECK(eval("-9223372036854775808 > -1e19"));
    // Exact, not through a double: 2^53 + 1 is not the double 2^53.
    CHECK_FALSE(eval("9007199254740993 == 9007199254740992.0"));
    CHECK(eval("9007199254740993 > 9007199254740992.0"));
    CHECK(eval("9007199254740992 == 9007199254740992.0"));
    CHECK(eval("${input.u} == 18446744073709551615",
               {Json(std::numeric_limits<std::uint64_t>::max())}));
    CHECK_FALSE(eval("${input.i} == ${input.u}",
                     {Json(-1), Json(std::numeric_limits<std::uint64_t>::max())}));
    // Deep equality uses the same rule inside arrays and objects; key order is not compared.
    const Json left = {{"n", 1}, {"list", {1, 2.0, {{"x", 3u}}}}};
    const Json right = Json::parse(R"({"list": [1.0, 2, {"x": 3.0}], "n": 1.0})");
    CHECK(eval("${input.l} == ${input.r}", {left, right}));
    CHECK_FALSE(eval("${input.l} != ${input.r}", {left, right}));
    const Json shorter = Json::parse(R"({"list": [1, 2], "n": 1})");
    const Json other_key = Json::parse(R"({"lust": [1, 2, {"x": 3}], "n": 1})");
    CHECK_FALSE(eval("${input.l} == ${input.r}", {left, shorter}));
    CHECK_FALSE(eval("${input.l} == ${input.r}", {left, other_key}));
    CHECK_FALSE(eval("${input.l} == ${input.r}", {Json::array({1}), Json::object({{"0", 1}})}));
    CHECK(eval("${input.l} == ${input.r}", {Json::array(), Json::array()}));
    CHECK_FALSE(eval("${input.l} == ${input.r}", {Json::array(), Json::object()}));
}

TEST_CASE("Deep equality does not recurse on the data's nesting", "[model]") {
    // Nesting comes from step outputs, not from the expression: it must not cost stack.
    // (No copies here: nlohmann's copy constructor would recurse.)
    Json a = 1, b = 1.0;
    for (int k = 0; k < 200'000; ++k) {
        a = Json::array({std::move(a)});
        b = Json::array({std::move(b)});
    }
    const Expression e = parse("${input.a} == ${input.b}");
    CHECK(e.evaluate([&](std::size_t i) { return i == 0 ? &a : &b; }));
}

TEST_CASE("A missing reference is null", "[model]") {
    CHECK(eval("${input.missing} == null"));
    CHECK_FALSE(eval("${input.missing} != null"));
    CHECK(eval("${steps.a.output.x} == null || ${steps.a.output.x} > 3"));
    CHECK(eval("${input.present} != null", {Json(0)}));
    CHECK(eval("${input.present} == null", {Json(nullptr)}));   // present and null: the same
    CHECK_THROWS_WITH(eval("${input.flag}"),
                      "[loom.when.type] expression \"${input.flag}\": the result must be a "
                      "boolean, got null from ${input.flag}");
}

TEST_CASE("References are listed in text order with their step and field", "[model]") {
    const Expression e = parse(
        "${steps.b-2.status} == 'completed' && ${steps.a.error} != null || "
        "${input.user.name} == ${steps.a.output.items.0} || ${steps.a.output}");
    const std::vector<Reference>& refs = e.references();
    REQUIRE(refs.size() == 5);

    CHECK(refs[0].root == Reference::Root::step);
    CHECK(refs[0].step == 1);
    CHECK(refs[0].field == Reference::Field::status);
    CHECK(refs[0].path.empty());
    CHECK(refs[0].text == "${steps.b-2.status}");

    CHECK(refs[1].root == Reference::Root::step);
    CHECK(refs[1].step == 0);
    CHECK(refs[1].field == Reference::Field::error);
    CHECK(refs[1].path.empty());

    CHECK(refs[2].root == Reference::Root::input);
    CHECK(refs[2].path == std::vector<std::string>{"user", "name"});
    CHECK(refs[2].text == "${input.user.name}");

    CHECK(refs[3].root == Reference::Root::step);
    CHECK(refs[3].step == 0);
    CHECK(refs[3].field == Reference::Field::output);
    CHECK(refs[3].path == std::vector<std::string>{"items", "0"});

    CHECK(refs[4].field == Reference::Field::output);
    CHECK(refs[4].path.empty());

    CHECK(e.text().substr(0, 19) == "${steps.b-2.status}");
    // evaluate() asks by index into that list.
    const std::vector<Json> values{"completed", "timed out", "x", "y", false};
    CHECK(e.evaluate([&](std::size_t i) { return &values.at(i); }));

    CHECK(parse("true").references().empty());
    // A copy shares the compiled tree and evaluates the same.
    const Expression copy = e;
    CHECK(copy.references().size() == 5);
    CHECK(copy.evaluate([&](std::size_t i) { return &values.at(i); }));
    // Default-constructed: no condition.
    CHECK(Expression().evaluate([](std::size_t) { return nullptr; }));
}

TEST_CASE("Malformed references are bad_reference errors", "[model]") {
    const std::string at = "[loom.definition.bad_reference] /steps/2/when: ";
    CHECK_THROWS_AS(parse("${steps.zz.status} == 'completed'"), loom::DefinitionError);
    CHECK(parse_error("${steps.zz.status} == 'completed'") ==
          at + "reference \"${steps.zz.status}\" names unknown step \"zz\"");
    CHECK(parse_error("true && ${input.a") ==
          at + "reference \"${input.a\" is not terminated by '}'");
    CHECK(parse_error("${steps.a.status.x}") ==
          at + "reference \"${steps.a.status.x}\" must continue with \".output\", \".status\" or "
               "\".error\" after the step id: ${steps.ID.output}");
    CHECK(parse_error("${input.a b} == 1") ==
          at + "reference \"${input.a b}\" has ' ' in segment \"a b\"; segments hold only letters, "
               "digits, '_' and '-'");
}

TEST_CASE("Parse errors quote the expression and name the column", "[model]") {
    struct Case {
        const char* text;
        std::string message;
    };
    const std::vector<Case> cases{
        {"", R"("" is empty where an operand was expected (column 1))"},
        {" \t ", R"(" \t " is blank where an operand was expected (column 1))"},
        {"${input.a} ==", R"("${input.a} ==" ends where an operand was expected (column 14))"},
        {"true &&", R"("true &&" ends where an operand was expected (column 8))"},
        {"|| true", R"("|| true" has "||" where an operand was expected (column 1))"},
        {"true && )", R"~("true && )" has ")" where an operand was expected (column 9))~"},
        {"()", R"~("()" has ")" where an operand was expected (column 2))~"},
        {"!", R"("!" ends where an operand was expected (column 2))"},
        {"1 == 1 == 1",
         R"("1 == 1 == 1" has "==" after a comparison; comparisons do not chain, so use )"
         R"(parentheses or '&&' (column 8))"},
        {"1 < 2 > 0",
         R"("1 < 2 > 0" has ">" after a comparison; comparisons do not chain, so use )"
         R"(parentheses or '&&' (column 7))"},
        {"(true", R"("(true" ends where an operator or ')' was expected (column 6))"},
        {"(true false)",
         R"~("(true false)" has "false" where an operator or ')' was expected (column 7))~"},
        {"true)", R"~("true)" has ")" with no '(' to close (column 5))~"},
        {"true 'x'",
         R"("true 'x'" has "'x'" where an operator or the end was expected (column 6))"},
        {"true !", R"("true !" has "!" where an operator or the end was expected (column 6))"},
        {"foo == 1",
         R"("foo == 1" has the name "foo", but names are not part of the language: write text )"
         R"(in quotes ('foo'), a reference ${...}, true, false or null (column 1))"},
        {"True",
         R"("True" has the name "True", but names are not part of the language: write text )"
         R"(in quotes ('True'), a reference ${...}, true, false or null (column 1))"},
        {"true && exec ('rm')",
         R"~("true && exec ('rm')" calls "exec", but function calls are not part of the )~"
         R"(language (column 9))"},
        {"1 = 1", R"("1 = 1" has a single '='; equality is written '==' (column 3))"},
        {"true & true", R"("true & true" has a single '&'; "and" is written '&&' (column 6))"},
        {"true | true", R"("true | true" has a single '|'; "or" is written '||' (column 6))"},
        {"1 + 1", R"("1 + 1" has '+', which is not part of the language (column 3))"},
        {"$input", R"("$input" has '$', which is not part of the language (column 1))"},
        {"{} == {}", R"("{} == {}" has '{', which is not part of the language (column 1))"},
        {"true\x01", R"("true\u0001" has byte 0x01, which is not part of the language (column 5))"},
        {"'abc", R"("'abc" has a string that is not terminated (column 1))"},
        {R"(1 == "a\")", R"("1 == \"a\\\"" has a string that is not terminated (column 6))"},
        {R"('a\nb' == 'x')",
         R"("'a\\nb' == 'x'" has '\' before 'n' in a string; only \' and \\ are escapes in a )"
         R"('...' string (column 3))"},
        {R"("it\'s")",
         R"("\"it\\'s\"" has '\' before ''' in a string; only \" and \\ are escapes in a )"
         R"("..." string (column 4))"},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        CHECK(parse_error(c.text) == kBad + c.message);
    }
}

TEST_CASE("Numbers are written as in JSON", "[model]") {
    CHECK(eval("0 == -0 && 10 == 1e1 && 0.5 == 5E-1 && 1e+2 == 100 && -7 < -6.5"));
    // The text, and the malformed number it quotes (the run of characters that
    // could belong to one).
    const std::vector<std::pair<std::string, std::string>> malformed{
        {"01", "01"}, {"1.", "1."}, {"1e", "1e"}, {"1e+", "1e+"}, {"1.2.3", "1.2.3"},
        {"0x10", "0x10"}, {"1abc", "1abc"}, {"-", "-"}, {"- 1", "-"}, {"1 == -x", "-x"}};
    for (const auto& [text, number] : malformed) {
        INFO(text);
        CHECK(parse_error(text) == kBad + "\"" + text + "\" has the malformed number \"" + number +
                                       "\"; numbers are written as in JSON, e.g. 42, -1.5, 2e3 " +
                                       "(column " + std::to_string(text.find(number) + 1) + ")");
    }
    CHECK(parse_error(".5") ==
          kBad + R"(".5" has '.', which is not part of the language (column 1))");
    CHECK(parse_error("1 < 1e999") ==
          kBad + R"("1 < 1e999" has the number 1e999, which is out of range (column 5))");
}

TEST_CASE("Length and nesting are bounded, and huge inputs are refused at once", "[model]") {
    // 4096 bytes is allowed; a long chain adds no nesting, so it parses and evaluates.
    std::string chain = "true";
    while (chain.size() + 8 <= 4096) chain += " && true";
    chain.append(4096 - chain.size(), ' ');
    CHECK(eval(chain));
    CHECK(parse_error(chain + " ") ==
          "[loom.definition.bad_expression] /steps/2/when: expression starting "
          "\"true && true && true && true && \" is 4097 bytes; the limit is 4096");

    // 32 levels of '(' and '!' are allowed, 33 are not.
    const std::string parens32 = std::string(32, '(') + "true" + std::string(32, ')');
    CHECK(eval(parens32));
    CHECK(eval(std::string(32, '!') + "true"));
    CHECK(eval("!(!(!(!(" + std::string(24, '(') + "true" + std::string(28, ')')));
    const std::string parens33 = "(" + parens32 + ")";
    CHECK(parse_error(parens33) ==
          kBad + "\"" + parens33 + "\" nests '(' and '!' deeper than the limit of 32 (column 33)");
    CHECK(parse_error("1 == 1 && " + std::string(33, '!') + "true") ==
          kBad + "\"1 == 1 && " + std::string(33, '!') +
              "true\" nests '(' and '!' deeper than the limit of 32 (column 43)");
    CHECK(parse_error("!(!(" + std::string(29, '(') + "true") ==
          kBad + "\"!(!(" + std::string(29, '(') +
              "true\" nests '(' and '!' deeper than the limit of 32 (column 33)");

    // A million of either is refused by the length check before any parsing. The
    // bound is loose: it only catches a parser that scans or recurses first.
    const auto start = std::chrono::steady_clock::now();
    for (char c : {'(', '!'}) {
        const std::string huge(1'000'000, c);
        CHECK(parse_error(huge) ==
              "[loom.definition.bad_expression] /steps/2/when: expression starting \"" +
                  std::string(32, c) + "\" is 1000000 bytes; the limit is 4096");
    }
    // Within the length limit, the depth counter stops at the 33rd level.
    CHECK(parse_error(std::string(4096, '(')).find("(column 33)") != std::string::npos);
    CHECK(parse_error(std::string(4096, '!')).find("(column 33)") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

TEST_CASE("Wrong types at evaluation are loom.when.type errors quoting the text", "[model]") {
    const std::string at = "[loom.when.type] expression ";
    auto error = [](std::string_view text, const std::vector<Json>& values = {}) -> std::string {
        try {
            eval(text, values);
        } catch (const loom::InvalidArgument& e) {
            CHECK(e.id() == loom::error_id::when_type);
            return e.what();
        }
        return "";
    };
    CHECK_THROWS_AS(eval("1"), loom::InvalidArgument);
    CHECK(error("1") == at + R"("1": the result must be a boolean, got number)");
    CHECK(error("'yes'") == at + R"("'yes'": the result must be a boolean, got string)");
    CHECK(error("${input.n}", {Json(1)}) ==
          at + R"("${input.n}": the result must be a boolean, got number from ${input.n})");
    CHECK(error("!${input.s}", {"x"}) ==
          at + R"("!${input.s}": '!' needs a boolean, got string from ${input.s} (column 1))");
    CHECK(error("!!null") == at + R"("!!null": '!' needs a boolean, got null (column 2))");
    CHECK(error("true && 1") == at + R"("true && 1": '&&' needs booleans, got number (column 9))");
    CHECK(error("${input.a} && true", {Json::object()}) ==
          at + R"("${input.a} && true": '&&' needs booleans, got object from ${input.a} )"
               R"((column 1))");
    CHECK(error("false || ${input.a}", {Json::array()}) ==
          at + R"("false || ${input.a}": '||' needs booleans, got array from ${input.a} )"
               R"((column 10))");
    CHECK(error("false || ${input.missing}") ==
          at + R"("false || ${input.missing}": '||' needs booleans, got null from )"
               R"(${input.missing} (column 10))");
    CHECK(error("1 < 'a'") ==
          at + R"("1 < 'a'": '<' needs two numbers or two strings, got number and string )"
               R"((column 3))");
    CHECK(error("${input.a} >= 1", {true}) ==
          at + R"("${input.a} >= 1": '>=' needs two numbers or two strings, got boolean from )"
               R"(${input.a} and number (column 12))");
    CHECK(error("null <= null") ==
          at + R"("null <= null": '<=' needs two numbers or two strings, got null and null )"
               R"((column 6))");
    CHECK(error("(1 == 1) > false") ==
          at + R"("(1 == 1) > false": '>' needs two numbers or two strings, got boolean and )"
               R"(boolean (column 10))");
    CHECK(error("${input.a} < ${input.b}", {Json::array({1}), Json::array({2})}) ==
          at + R"("${input.a} < ${input.b}": '<' needs two numbers or two strings, got array from )"
               R"(${input.a} and array from ${input.b} (column 12))");
}
