// Input templates: how ${...} references are parsed at validation, and how a step's
// input (and its compensation's) is resolved from the run's input and its upstream
// steps' outputs.
#include <catch2/catch.hpp>

#include <loom/error.hpp>
#include <loom/workflow.hpp>

#include <string>
#include <vector>

#include "model/plan.hpp"

using loom::Json;
using loom::Workflow;
using loom::detail::parse_template;
using loom::detail::TemplatePart;

namespace {

const std::unordered_map<std::string, std::uint32_t> kIndex{{"a", 0}, {"b-2", 1}};

std::vector<TemplatePart> parse(const std::string& text) {
    return parse_template(text, "/steps/0/input/x", kIndex, loom::detail::RefContext::input);
}

using Resolver = Json (*)(const Workflow&, std::uint32_t, const Json&, const loom::detail::StepOf&);

// Resolves `step` of `wf` with the given outputs of the steps (by index): its
// input, or with resolve_compensation_input its compensation's input.
Json resolve(const Workflow& wf, const std::string& step, const Json& run_input,
             const std::vector<Json>& outputs, Resolver resolver = nullptr) {
    auto index = static_cast<std::uint32_t>(wf.find_step(step) - wf.steps().data());
    const std::string no_error;
    auto step_of = [&](std::uint32_t i) {
        return loom::detail::StepView{outputs.at(i), loom::StepStatus::completed, no_error};
    };
    if (!resolver) return loom::detail::resolve_input(wf, index, run_input, step_of);
    return resolver(wf, index, run_input, step_of);
}

// A workflow whose step "b" reads `input` after step "a".
Workflow reading(const Json& input) {
    return Workflow::from_json(Json{
        {"name", "wf"},
        {"version", 1},
        {"steps", {{{"id", "a"}, {"handler", "h"}},
                   {{"id", "b"}, {"handler", "h"}, {"depends_on", {"a"}}, {"input", input}}}}});
}

}  // namespace

TEST_CASE("Templates split into literal text and references", "[model][reference]") {
    auto parts = parse("Hi ${input.name}, ${steps.b-2.output.tags.0}!");
    REQUIRE(parts.size() == 5);
    REQUIRE(parts[0].literal == "Hi ");
    REQUIRE_FALSE(parts[0].ref);
    REQUIRE(parts[1].ref->root == loom::detail::Reference::Root::input);
    REQUIRE(parts[1].ref->path == std::vector<std::string>{"name"});
    REQUIRE(parts[1].ref->text == "${input.name}");
    REQUIRE(parts[2].literal == ", ");
    REQUIRE(parts[3].ref->root == loom::detail::Reference::Root::step);
    REQUIRE(parts[3].ref->step == 1);
    REQUIRE(parts[3].ref->path == std::vector<std::string>{"tags", "0"});
    REQUIRE(parts[3].ref->text == "${steps.b-2.output.tags.0}");
    REQUIRE(parts[4].literal == "!");

    auto whole = parse("${input}");
    REQUIRE(whole.size() == 1);
    REQUIRE(whole[0].ref->root == loom::detail::Reference::Root::input);
    REQUIRE(whole[0].ref->path.empty());

    auto output = parse("${steps.a.output}");
    REQUIRE(output.size() == 1);
    REQUIRE(output[0].ref->step == 0);
    REQUIRE(output[0].ref->path.empty());
}

TEST_CASE("$${ is a literal ${", "[model][reference]") {
    auto parts = parse("cost: $${input.x} $5 $$ ${input.y}$");
    REQUIRE(parts.size() == 3);
    REQUIRE(parts[0].literal == "cost: ${input.x} $5 $$ ");
    REQUIRE(parts[1].ref->text == "${input.y}");
    REQUIRE(parts[2].literal == "$");
}

TEST_CASE("Malformed references name the path and the text", "[model][reference]") {
    const std::string at = "[loom.definition.bad_reference] /steps/0/input/x: ";
    REQUIRE_THROWS_AS(parse("${input.url"), loom::DefinitionError);
    REQUIRE_THROWS_WITH(parse("go ${input.url"),
                        at + "reference \"${input.url\" is not terminated by '}'");
    REQUIRE_THROWS_WITH(parse("${input..a}"), at + "reference \"${input..a}\" has an empty segment");
    REQUIRE_THROWS_WITH(parse("${input.}"), at + "reference \"${input.}\" has an empty segment");
    REQUIRE_THROWS_WITH(parse("${}"), at + "reference \"${}\" has an empty segment");
    REQUIRE_THROWS_WITH(parse("${input.a b}"),
                        at + "reference \"${input.a b}\" has ' ' in segment \"a b\"; segments hold "
                             "only letters, digits, '_' and '-'");
    REQUIRE_THROWS_WITH(parse("${input.${x}}"),
                        at + "reference \"${input.${x}\" has '$' in segment \"${x\"; segments hold "
                             "only letters, digits, '_' and '-'");
    REQUIRE_THROWS_WITH(parse("${foo.bar}"),
                        at + "reference \"${foo.bar}\" must start with \"input\" or \"steps\"");
    REQUIRE_THROWS_WITH(parse("${steps}"),
                        at + "reference \"${steps}\" must name a step: ${steps.ID.output}");
    REQUIRE_THROWS_WITH(parse("${steps.a}"),
                        at + "reference \"${steps.a}\" must continue with \".output\", \".status\" "
                             "or \".error\" after the step id: ${steps.ID.output}");
    REQUIRE_THROWS_WITH(parse("${steps.a.outputs.x}"),
                        at + "reference \"${steps.a.outputs.x}\" must continue with \".output\", "
                             "\".status\" or \".error\" after the step id: ${steps.ID.output}");
    REQUIRE_THROWS_WITH(parse("${steps.zz.output}"),
                        at + "reference \"${steps.zz.output}\" names unknown step \"zz\"");
}

TEST_CASE("A reference that is the whole string takes the referenced value", "[model][reference]") {
    Workflow wf = reading({{"all", "${steps.a.output}"},
                           {"count", "${steps.a.output.count}"},
                           {"first", "${steps.a.output.items.0}"},
                           {"zero", "${steps.a.output.map.0}"},  // numeric segment as a key
                           {"run", "${input}"},
                           {"list", {"${input.flag}", 2, {{"deep", "${input.missing_ok.x}"}}}}});
    const Json a_output = {{"count", 3}, {"items", {"x", "y"}}, {"map", {{"0", "zero"}}}};
    const Json run_input = {{"flag", false}, {"missing_ok", {{"x", nullptr}}}};
    REQUIRE(resolve(wf, "b", run_input, {a_output, {}}) ==
            Json{{"all", a_output},
                 {"count", 3},
                 {"first", "x"},
                 {"zero", "zero"},
                 {"run", run_input},
                 {"list", {false, 2, {{"deep", nullptr}}}}});
    // The input template itself can be a single reference.
    REQUIRE(resolve(reading("${steps.a.output.items}"), "b", {}, {a_output, {}}) ==
            Json{"x", "y"});
}

TEST_CASE("A reference inside longer text is interpolated", "[model][reference]") {
    Workflow wf = reading({{"text", "n=${input.n} s=${input.s} o=${input.o} a=${input.a} "
                                    "b=${input.b} z=${input.z} $${input.n}"},
                           {"${input.n}", "keys are not templated"}});
    const Json run_input = {{"n", 2.5}, {"s", "raw"}, {"o", {{"k", 1}}}, {"a", {1, "x"}},
                            {"b", true}, {"z", nullptr}};
    REQUIRE(resolve(wf, "b", run_input, {{}, {}}) ==
            Json{{"text", R"(n=2.5 s=raw o={"k":1} a=[1,"x"] b=true z=null ${input.n})"},
                 {"${input.n}", "keys are not templated"}});
}

TEST_CASE("A step without an input template receives its dependencies' outputs", "[model][reference]") {
    Workflow wf = Workflow::from_json(R"({"name": "wf", "version": 1, "steps": [
        {"id": "a", "handler": "h"},
        {"id": "b", "handler": "h"},
        {"id": "c", "handler": "h", "depends_on": ["b", "a"]}]})");
    REQUIRE(resolve(wf, "c", {{"ignored", 1}}, {1, "two", {}}) == Json{{"a", 1}, {"b", "two"}});
    REQUIRE(resolve(wf, "a", {{"ignored", 1}}, {{}, {}, {}}) == Json::object());
}

TEST_CASE("An input without references is passed as written", "[model][reference]") {
    const Json input = {{"url", "https://example.org/$"}, {"n", {1, 2}}};
    Workflow wf = reading(input);
    REQUIRE(loom::detail::Plan::of(wf).steps[1].substitutions.empty());
    REQUIRE(resolve(wf, "b", {{"url", "other"}}, {{}, {}}) == input);
}

TEST_CASE("A missing key or index fails at resolve time, naming the reference", "[model][reference]") {
    Workflow wf = reading({{"x", "${input.user.name}"}});
    REQUIRE(resolve(wf, "b", {{"user", {{"name", "Ann"}}}}, {{}, {}}) == Json{{"x", "Ann"}});
    REQUIRE_THROWS_AS(resolve(wf, "b", {{"user", Json::object()}}, {{}, {}}), loom::InvalidArgument);
    REQUIRE_THROWS_WITH(resolve(wf, "b", {{"user", Json::object()}}, {{}, {}}),
                        "[loom.input.missing] ${input.user.name}: no key \"name\" in input.user");
    REQUIRE_THROWS_WITH(resolve(wf, "b", {{"user", 7}}, {{}, {}}),
                        "[loom.input.missing] ${input.user.name}: cannot look up \"name\" in "
                        "input.user, which is a number");
    REQUIRE_THROWS_WITH(resolve(wf, "b", nullptr, {{}, {}}),
                        "[loom.input.missing] ${input.user.name}: cannot look up \"user\" in input, "
                        "which is null");

    Workflow items = reading("at ${steps.a.output.items.2}");
    const Json a_output = {{"items", {"x", "y"}}};
    REQUIRE_THROWS_WITH(resolve(items, "b", {}, {a_output, {}}),
                        "[loom.input.missing] ${steps.a.output.items.2}: no index 2 in "
                        "steps.a.output.items, an array of 2");
    REQUIRE_THROWS_WITH(resolve(reading("${steps.a.output.items.x}"), "b", {}, {a_output, {}}),
                        "[loom.input.missing] ${steps.a.output.items.x}: cannot look up \"x\" in "
                        "steps.a.output.items, which is an array");
}

TEST_CASE("A compensation receives its step's output, or its own template resolved", "[model][reference]") {
    using loom::detail::resolve_compensation_input;
    const Workflow wf = Workflow::from_json(R"({"name": "wf", "version": 1, "steps": [
        {"id": "a", "handler": "h", "compensate": {"handler": "undo"}},
        {"id": "b", "handler": "h", "depends_on": ["a"], "input": "${steps.a.output}",
         "compensate": {"handler": "undo", "input": {
             "mine": "${steps.b.output.id}", "upstream": "${steps.a.output}", "who": "${input.user}",
             "text": "undo ${steps.b.output.id} for ${input.user}", "fixed": [1, "$${x}"]}}}]})");
    REQUIRE(loom::detail::Plan::of(wf).steps[1].substitutions.size() == 1);
    REQUIRE(loom::detail::Plan::of(wf).steps[1].compensate_substitutions.size() == 5);

    const std::vector<Json> outputs = {{{"x", 1}}, {{"id", 7}}};
    const Json run_input = {{"user", "ann"}};
    REQUIRE(resolve(wf, "a", run_input, outputs, resolve_compensation_input) == Json{{"x", 1}});
    REQUIRE(resolve(wf, "b", run_input, outputs, resolve_compensation_input) ==
            Json{{"mine", 7},
                 {"upstream", {{"x", 1}}},
                 {"who", "ann"},
                 {"text", "undo 7 for ann"},
                 {"fixed", {1, "${x}"}}});
    // The step's own input is untouched by its compensation's template.
    REQUIRE(resolve(wf, "b", run_input, outputs) == Json{{"x", 1}});

    REQUIRE_THROWS_WITH(resolve(wf, "b", run_input, {{{"x", 1}}, {{"ok", true}}},
                                resolve_compensation_input),
                        "[loom.input.missing] ${steps.b.output.id}: no key \"id\" in steps.b.output");
}
