// The model: JSON and C++ definitions, their validation (every error id with its
// exact message), the canonical form and content hash, and the definition limits.
#include <catch2/catch.hpp>

#include <loom/error.hpp>
#include <loom/workflow.hpp>

#include <chrono>
#include <climits>
#include <cmath>
#include <limits>
#include <string>

#include "model/model.hpp"
#include "model/plan.hpp"
#include "support/temp_dir.hpp"

#include <fstream>

using loom::DefinitionError;
using loom::DefinitionLimits;
using loom::Json;
using loom::OnError;
using loom::RetryPolicy;
using loom::Workflow;
using loom::WorkflowBuilder;
using std::chrono::milliseconds;

namespace {

// A definition around a steps array written as JSON text, for focused error cases.
std::string with_steps(const std::string& steps) {
    return R"({"name": "wf", "version": 1, "steps": )" + steps + "}";
}

const char* const kEtl = R"({
  "version": 3,
  "name": "etl",
  "steps": [
    {"id": "extract", "handler": "http.get", "input": {"url": "${input.url}"}},
    {"handler": "double", "id": "transform", "depends_on": ["extract"]},
    {"id": "audit", "handler": "log", "depends_on": ["extract"]},
    {"id": "load", "handler": "db/write", "depends_on": ["transform", "audit"],
     "input": {"rows": "${steps.transform.output}"}}
  ]
})";

// Every step setting and workflow default, spelled as briefly as JSON allows.
const char* const kOrders = R"({
  "name": "orders",
  "version": 2,
  "defaults": {"retry": {"max_attempts": 3}, "timeout_ms": 30000, "on_error": "compensate"},
  "deadline_ms": 3600000,
  "steps": [
    {"id": "reserve", "handler": "stock.reserve", "input": "${input.items}",
     "retry": {"max_attempts": 5, "initial_backoff_ms": 200, "multiplier": 1.5,
               "max_backoff_ms": 5000, "jitter": 0.25},
     "compensate": {"handler": "stock.release", "input": {"id": "${steps.reserve.output.id}"}}},
    {"id": "charge", "handler": "card.charge", "depends_on": ["reserve"], "timeout_ms": 10000,
     "compensate": {"handler": "card.refund"}},
    {"id": "notify", "handler": "mail.send", "depends_on": ["charge"], "on_error": "continue",
     "when": "${input.notify} == true", "run_if_skipped": true},
    {"id": "audit", "handler": "log", "depends_on": ["notify"], "on_error": "fail",
     "run_if_skipped": false}
  ]
})";

Workflow orders_built() {
    using namespace std::chrono_literals;
    return WorkflowBuilder("orders", 2)
        .default_retry({3})
        .default_timeout(30s)
        .default_on_error(OnError::compensate)
        .deadline(1h)
        .step("reserve", "stock.reserve")
        .input("${input.items}")
        .retry({5, 200ms, 1.5, 5000ms, 0.25})
        .compensate("stock.release", Json{{"id", "${steps.reserve.output.id}"}})
        .step("charge", "card.charge")
        .after("reserve")
        .timeout(10s)
        .compensate("card.refund")
        .step("notify", "mail.send")
        .after("charge")
        .on_error(OnError::proceed)
        .when("${input.notify} == true")
        .run_if_skipped()
        .step("audit", "log")
        .after("notify")
        .on_error(OnError::fail)
        .run_if_skipped(false)
        .build();
}

void require_policy(const RetryPolicy& p, int attempts, std::int64_t initial, double multiplier,
                    std::int64_t max, double jitter) {
    REQUIRE(p.max_attempts == attempts);
    REQUIRE(p.initial_backoff == milliseconds(initial));
    REQUIRE(p.multiplier == multiplier);
    REQUIRE(p.max_backoff == milliseconds(max));
    REQUIRE(p.jitter == jitter);
}

}  // namespace

TEST_CASE("A JSON definition becomes a workflow with its compiled graph", "[model]") {
    Workflow wf = Workflow::from_json(kEtl);
    REQUIRE(wf.name() == "etl");
    REQUIRE(wf.version() == 3);
    REQUIRE(wf.steps().size() == 4);
    REQUIRE(wf.steps()[1].id == "transform");
    REQUIRE(wf.steps()[1].handler == "double");
    REQUIRE_FALSE(wf.steps()[1].input.has_value());
    REQUIRE(wf.steps()[3].depends_on == std::vector<std::string>{"transform", "audit"});
    REQUIRE(wf.steps()[0].input == Json{{"url", "${input.url}"}});

    REQUIRE(wf.find_step("audit") == &wf.steps()[2]);
    REQUIRE(wf.find_step("nope") == nullptr);

    const loom::detail::Plan& plan = loom::detail::Plan::of(wf);
    REQUIRE(plan.index.at("load") == 3);
    REQUIRE(plan.steps[3].deps == std::vector<std::uint32_t>{1, 2});
    REQUIRE(plan.steps[0].dependents == std::vector<std::uint32_t>{1, 2});
    REQUIRE(plan.sinks == std::vector<std::uint32_t>{3});
    REQUIRE(plan.steps[1].substitutions.empty());
    REQUIRE(plan.steps[3].substitutions.size() == 1);
    REQUIRE(plan.steps[3].substitutions[0].where.to_string() == "/rows");
}

TEST_CASE("to_json is canonical and round-trips with an equal hash", "[model]") {
    Workflow wf = Workflow::from_json(kEtl);
    // Keys sorted, depends_on always present, input only where given.
    REQUIRE(wf.to_json().dump() ==
            R"({"name":"etl","steps":[)"
            R"({"depends_on":[],"handler":"http.get","id":"extract","input":{"url":"${input.url}"}},)"
            R"({"depends_on":["extract"],"handler":"double","id":"transform"},)"
            R"({"depends_on":["extract"],"handler":"log","id":"audit"},)"
            R"({"depends_on":["transform","audit"],"handler":"db/write","id":"load",)"
            R"("input":{"rows":"${steps.transform.output}"}}],"version":3})");

    Workflow again = Workflow::from_json(wf.to_json());
    Workflow from_text = Workflow::from_json(wf.to_json().dump());
    REQUIRE(again.to_json().dump() == wf.to_json().dump());
    REQUIRE(again.hash() == wf.hash());
    REQUIRE(from_text.hash() == wf.hash());
    REQUIRE(wf.hash().size() == 16);
    REQUIRE(wf.hash().find_first_not_of("0123456789abcdef") == std::string::npos);

    auto changed = [&](auto edit) {
        Json json = wf.to_json();
        edit(json);
        return Workflow::from_json(json).hash();
    };
    REQUIRE(changed([](Json& j) { j["version"] = 4; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][1]["handler"] = "triple"; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][0]["input"]["url"] = "${input.uri}"; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][3]["depends_on"] = {"audit", "transform"}; }) !=
            wf.hash());
}

TEST_CASE("The content hash is 64-bit FNV-1a of the canonical JSON", "[model]") {
    // Hashes are persisted with every run: the algorithm must never change.
    REQUIRE(loom::detail::content_hash("") == "cbf29ce484222325");
    REQUIRE(loom::detail::content_hash("a") == "af63dc4c8601ec8c");
    Workflow wf = Workflow::from_json(kEtl);
    REQUIRE(wf.hash() == loom::detail::content_hash(wf.to_json().dump()));
}

TEST_CASE("Definitions without step settings keep their canonical text and hash", "[model]") {
    // Computed before retry, timeout_ms, on_error, compensate, when, run_if_skipped,
    // defaults and deadline_ms existed: stored runs pin these hashes.
    REQUIRE(Workflow::from_json(kEtl).hash() == "52756d519d6545d4");
    const Workflow hello = WorkflowBuilder("hello", 1).step("a", "h").step("b", "h").after("a").build();
    REQUIRE(hello.to_json().dump() ==
            R"({"name":"hello","steps":[{"depends_on":[],"handler":"h","id":"a"},)"
            R"({"depends_on":["a"],"handler":"h","id":"b"}],"version":1})");
    REQUIRE(hello.hash() == "b4b89302ba997036");
    // Settings given at their "unset" value add nothing either.
    REQUIRE(Workflow::from_json(R"({"name": "hello", "version": 1, "defaults": {}, "steps": [
        {"id": "a", "handler": "h", "run_if_skipped": false},
        {"id": "b", "handler": "h", "depends_on": ["a"]}]})")
                .hash() == "b4b89302ba997036");
}

TEST_CASE("Step settings and defaults are read, written canonically and round-trip", "[model]") {
    const Workflow wf = Workflow::from_json(kOrders);
    const auto& steps = wf.steps();
    require_policy(*steps[0].retry, 5, 200, 1.5, 5000, 0.25);
    REQUIRE(steps[0].compensate->handler == "stock.release");
    REQUIRE(steps[0].compensate->input == Json{{"id", "${steps.reserve.output.id}"}});
    REQUIRE_FALSE(steps[1].retry);
    REQUIRE(steps[1].timeout == milliseconds(10'000));
    REQUIRE(steps[1].compensate->handler == "card.refund");
    REQUIRE_FALSE(steps[1].compensate->input);
    REQUIRE(steps[2].on_error == OnError::proceed);
    REQUIRE(steps[2].when == "${input.notify} == true");   // as written
    REQUIRE(steps[2].run_if_skipped);
    REQUIRE(steps[3].on_error == OnError::fail);
    REQUIRE_FALSE(steps[3].run_if_skipped);
    REQUIRE(steps[3].when.empty());
    require_policy(*wf.defaults().retry, 3, 1000, 2.0, 60'000, 0.0);
    REQUIRE(wf.defaults().timeout == milliseconds(30'000));
    REQUIRE(wf.defaults().on_error == OnError::compensate);
    REQUIRE(wf.deadline() == milliseconds(3'600'000));
    REQUIRE(loom::detail::Plan::of(wf).steps[0].compensate_substitutions.size() == 1);
    REQUIRE(loom::detail::Plan::of(wf).steps[0].compensate_substitutions[0].where.to_string() == "/id");
    REQUIRE(loom::detail::Plan::of(wf).steps[1].compensate_substitutions.empty());

    // Retry policies in full, settings only where set, run_if_skipped only when true.
    REQUIRE(wf.to_json().dump() ==
            R"({"deadline_ms":3600000,"defaults":{"on_error":"compensate","retry":)"
            R"({"initial_backoff_ms":1000,"jitter":0.0,"max_attempts":3,"max_backoff_ms":60000,)"
            R"("multiplier":2.0},"timeout_ms":30000},"name":"orders","steps":[)"
            R"({"compensate":{"handler":"stock.release","input":{"id":"${steps.reserve.output.id}"}},)"
            R"("depends_on":[],"handler":"stock.reserve","id":"reserve","input":"${input.items}",)"
            R"("retry":{"initial_backoff_ms":200,"jitter":0.25,"max_attempts":5,"max_backoff_ms":5000,)"
            R"("multiplier":1.5}},)"
            R"({"compensate":{"handler":"card.refund"},"depends_on":["reserve"],)"
            R"("handler":"card.charge","id":"charge","timeout_ms":10000},)"
            R"({"depends_on":["charge"],"handler":"mail.send","id":"notify","on_error":"continue",)"
            R"("run_if_skipped":true,"when":"${input.notify} == true"},)"
            R"({"depends_on":["notify"],"handler":"log","id":"audit","on_error":"fail"}],"version":2})");

    const Workflow built = orders_built();
    REQUIRE(built.to_json().dump() == wf.to_json().dump());
    REQUIRE(built.hash() == wf.hash());
    REQUIRE(Workflow::from_json(wf.to_json()).hash() == wf.hash());
    REQUIRE(Workflow::from_json(wf.to_json().dump()).to_json() == wf.to_json());
}

TEST_CASE("Settings are part of the content hash", "[model]") {
    const Workflow wf = Workflow::from_json(kOrders);
    auto changed = [&](auto edit) {
        Json json = wf.to_json();
        edit(json);
        return Workflow::from_json(json).hash();
    };
    REQUIRE(changed([](Json& j) { j["steps"][0]["retry"]["jitter"] = 0.5; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][1].erase("timeout_ms"); }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][3].erase("on_error"); }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][1]["compensate"]["input"] = "${input}"; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][2]["when"] = "${input.notify}"; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["steps"][2].erase("run_if_skipped"); }) != wf.hash());
    REQUIRE(changed([](Json& j) { j["defaults"]["on_error"] = "fail"; }) != wf.hash());
    REQUIRE(changed([](Json& j) { j.erase("deadline_ms"); }) != wf.hash());
}

TEST_CASE("Two spellings of one retry policy hash equally", "[model]") {
    auto hash_of = [](const Json& retry) {
        return Workflow::from_json(
                   Json{{"name", "wf"},
                        {"version", 1},
                        {"steps", {{{"id", "a"}, {"handler", "h"}, {"retry", retry}}}}})
            .hash();
    };
    const std::string brief = hash_of({{"max_attempts", 4}});
    REQUIRE(hash_of({{"max_attempts", 4},
                     {"initial_backoff_ms", 1000},
                     {"multiplier", 2},
                     {"max_backoff_ms", 60'000},
                     {"jitter", 0}}) == brief);
    REQUIRE(hash_of({{"multiplier", 2.0}, {"max_attempts", 4}, {"jitter", 0.0}}) == brief);
    REQUIRE(hash_of({{"max_attempts", 5}}) != brief);
    // An empty policy is the default one, but set: it overrides the workflow's default.
    const std::string none = Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h"}])")).hash();
    REQUIRE(hash_of(Json::object()) != none);
}

TEST_CASE("Each step's settings in force are its own, else the defaults, else none", "[model]") {
    const Workflow wf = Workflow::from_json(kOrders);
    require_policy(wf.retry_of(0), 5, 200, 1.5, 5000, 0.25);
    require_policy(wf.retry_of(1), 3, 1000, 2.0, 60'000, 0.0);
    REQUIRE(wf.timeout_of(0) == milliseconds(30'000));
    REQUIRE(wf.timeout_of(1) == milliseconds(10'000));
    REQUIRE(wf.on_error_of(0) == OnError::compensate);
    REQUIRE(wf.on_error_of(2) == OnError::proceed);
    REQUIRE(wf.on_error_of(3) == OnError::fail);

    const Workflow plain = Workflow::from_json(kEtl);
    require_policy(plain.retry_of(0), 1, 1000, 2.0, 60'000, 0.0);   // one attempt
    REQUIRE_FALSE(plain.timeout_of(0));
    REQUIRE(plain.on_error_of(0) == OnError::fail);
    REQUIRE_FALSE(plain.deadline());
    REQUIRE_FALSE(plain.defaults().retry);
    REQUIRE_FALSE(plain.defaults().timeout);
    REQUIRE_FALSE(plain.defaults().on_error);
}

TEST_CASE("OnError has the names JSON uses", "[model]") {
    REQUIRE(loom::to_string(OnError::fail) == "fail");
    REQUIRE(loom::to_string(OnError::proceed) == "continue");
    REQUIRE(loom::to_string(OnError::compensate) == "compensate");
    for (OnError e : {OnError::fail, OnError::proceed, OnError::compensate}) {
        REQUIRE(loom::detail::parse_on_error(loom::to_string(e)) == e);
    }
    REQUIRE_FALSE(loom::detail::parse_on_error("proceed"));
    REQUIRE_FALSE(loom::detail::parse_on_error("Fail"));
}

TEST_CASE("Backoff grows by the multiplier and saturates at max_backoff", "[model]") {
    RetryPolicy p;   // 1 s, doubling, at most 60 s
    REQUIRE(p.backoff(1) == milliseconds(1'000));
    REQUIRE(p.backoff(2) == milliseconds(2'000));
    REQUIRE(p.backoff(3) == milliseconds(4'000));
    REQUIRE(p.backoff(6) == milliseconds(32'000));
    REQUIRE(p.backoff(7) == milliseconds(60'000));
    REQUIRE(p.backoff(8) == milliseconds(60'000));
    REQUIRE(p.backoff(INT_MAX) == milliseconds(60'000));

    p = {10, milliseconds(200), 1.5, milliseconds(5'000), 0.25};
    REQUIRE(p.backoff(2) == milliseconds(300));
    REQUIRE(p.backoff(3) == milliseconds(450));
    REQUIRE(p.backoff(4) == milliseconds(675));
    REQUIRE(p.backoff(9) == milliseconds(5'000));   // 200 * 1.5^8 = 5125.8

    // The largest values validation allows, and attempt numbers no run reaches:
    // saturated, not overflowed, and as fast as attempt 2.
    p = {1'000, milliseconds(86'400'000), 100, milliseconds(86'400'000), 1};
    REQUIRE(p.backoff(1'000) == milliseconds(86'400'000));
    REQUIRE(p.backoff(INT_MAX) == milliseconds(86'400'000));
    p = {1'000, milliseconds(1), 1, milliseconds(86'400'000), 0};
    REQUIRE(p.backoff(INT_MAX) == milliseconds(1));   // multiplier 1: always the first wait
    p = {5, milliseconds(0), 100, milliseconds(1'000), 0};
    REQUIRE(p.backoff(INT_MAX) == milliseconds(0));   // no wait stays no wait
    p = {5, milliseconds(2'000), 2, milliseconds(1'000), 0};
    REQUIRE(p.backoff(1) == milliseconds(1'000));   // a host's own policy: max_backoff still caps
    p.multiplier = std::numeric_limits<double>::quiet_NaN();
    REQUIRE(p.backoff(3) == milliseconds(1'000));
}

TEST_CASE("The builder's settings fail validation with the JSON path", "[model]") {
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).step("a", "h").step("b", "h").retry({0}).build(),
                        "[loom.definition.bad_retry] /steps/1/retry/max_attempts: expected an "
                        "integer from 1 to 1000, got 0");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).step("a", "h").timeout(milliseconds(0)).build(),
                        "[loom.definition.bad_timeout] /steps/0/timeout_ms: expected an integer "
                        "from 1 to 604800000 (one week), got 0");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).step("a", "h").when("").build(),
                        "[loom.definition.empty] /steps/0/when: a condition must not be empty; "
                        "leave \"when\" out for a step that always runs");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).step("a", "h").compensate("un do").build(),
                        "[loom.definition.bad_id] /steps/0/compensate/handler: handler name \"un "
                        "do\" has ' ' at index 2; only letters, digits, '_', '.', ':', '/' and '-' "
                        "may follow the first character (^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$)");
    RetryPolicy nan_jitter;
    nan_jitter.jitter = std::nan("");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).default_retry(nan_jitter).step("a", "h").build(),
                        "[loom.definition.bad_retry] /defaults/retry/jitter: expected a number from "
                        "0 to 1, got nan");
    const auto leap_year = std::chrono::hours(24 * 366);
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).deadline(leap_year).step("a", "h").build(),
                        "[loom.definition.bad_deadline] /deadline_ms: expected an integer from 1 to "
                        "31536000000 (365 days), got 31622400000");
}

TEST_CASE("A compensation's input may name its own step and any upstream one", "[model]") {
    REQUIRE_NOTHROW(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"},
        {"id": "b", "handler": "h", "depends_on": ["a"]},
        {"id": "c", "handler": "h", "depends_on": ["b"],
         "compensate": {"handler": "u", "input": ["${steps.c.output}", "${steps.a.output}",
                                                  "${steps.b.output.x}", "${input.y}"]}}])")));
    // The step's own input still may not name the step.
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h", "input": "${steps.a.output}",
         "compensate": {"handler": "u", "input": "${steps.a.output}"}}])")),
                        "[loom.definition.bad_reference] /steps/0/input: ${steps.a.output} names "
                        "step \"a\", which is not upstream of step \"a\" (list it in depends_on, "
                        "directly or through another step)");
}

TEST_CASE("WorkflowBuilder builds what the equivalent JSON defines", "[model]") {
    Workflow built = WorkflowBuilder("etl", 3)
                         .step("extract", "http.get")
                         .input({{"url", "${input.url}"}})
                         .step("transform", "double")
                         .after("extract")
                         .step("audit", "log")
                         .after({"extract"})
                         .step("load", "db/write")
                         .after({"transform", "audit"})
                         .input({{"rows", "${steps.transform.output}"}})
                         .build();
    Workflow parsed = Workflow::from_json(kEtl);
    REQUIRE(built.to_json().dump() == parsed.to_json().dump());
    REQUIRE(built.hash() == parsed.hash());
}

TEST_CASE("WorkflowBuilder refuses to configure a step before step()", "[model]") {
    WorkflowBuilder builder("wf", 1);
    REQUIRE_THROWS_AS(builder.input({{"a", 1}}), loom::InvalidArgument);
    REQUIRE_THROWS_WITH(builder.after("a"),
                        "[loom.builder.no_step] after() configures the latest step; call step() first");
    REQUIRE_THROWS_WITH(builder.after({"a", "b"}),
                        "[loom.builder.no_step] after() configures the latest step; call step() first");
    REQUIRE_THROWS_WITH(builder.retry({}),
                        "[loom.builder.no_step] retry() configures the latest step; call step() first");
    REQUIRE_THROWS_WITH(builder.timeout(std::chrono::seconds(1)),
                        "[loom.builder.no_step] timeout() configures the latest step; call step() first");
    REQUIRE_THROWS_WITH(builder.on_error(loom::OnError::proceed),
                        "[loom.builder.no_step] on_error() configures the latest step; call step() "
                        "first");
    REQUIRE_THROWS_WITH(builder.compensate("undo"),
                        "[loom.builder.no_step] compensate() configures the latest step; call step() "
                        "first");
    REQUIRE_THROWS_WITH(builder.when("true"),
                        "[loom.builder.no_step] when() configures the latest step; call step() first");
    REQUIRE_THROWS_WITH(builder.run_if_skipped(),
                        "[loom.builder.no_step] run_if_skipped() configures the latest step; call "
                        "step() first");
    REQUIRE(builder.json() == Json{{"name", "wf"}, {"version", 1}, {"steps", Json::array()}});
}

TEST_CASE("WorkflowBuilder errors name the path of the equivalent JSON", "[model]") {
    WorkflowBuilder builder("wf", 1);
    builder.step("a", "h").step("b", "h").after("a").after("c");
    REQUIRE_THROWS_WITH(builder.build(), "[loom.definition.unknown_dependency] /steps/1/depends_on/1: "
                                         "step \"b\" depends on unknown step \"c\"");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 0).step("a", "h").build(),
                        "[loom.definition.type] /version: expected a positive integer, got 0");
    REQUIRE_THROWS_WITH(WorkflowBuilder("wf", 1).build(),
                        "[loom.definition.empty] /steps: a workflow needs at least one step");
}

TEST_CASE("Errors carry a stable id", "[model]") {
    try {
        Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h", "depends_on": ["a"]}])"));
        FAIL("no error");
    } catch (const DefinitionError& e) {
        REQUIRE(e.id() == loom::error_id::definition_self_dependency);
    }
}

TEST_CASE("Invalid JSON says where", "[model]") {
    REQUIRE_THROWS_WITH(
        Workflow::from_json("{\"name\": \"wf\",\n \"version\": x}"),
        "[loom.definition.json] /: invalid JSON at byte 28: parse error at line 2, column 13: "
        "syntax error while parsing value - invalid literal; last read: '\"version\": x'");
    REQUIRE_THROWS_WITH(
        Workflow::from_json("{\"name\": \"wf\", \"version\": 1e999, \"steps\": []}"),
        "[loom.definition.json] /: invalid JSON: number overflow parsing '1e999'");
    // A Json holding bytes that are not UTF-8 has no JSON text.
    REQUIRE_THROWS_WITH(
        Workflow::from_json(Json{{"name", "wf\xff"}, {"version", 1}, {"steps", Json::array()}}),
        "[loom.definition.json] /: not valid as JSON text: invalid UTF-8 byte at index 2: 0xFF");
}

TEST_CASE("Wrong JSON types are named with their path", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json("[]"),
                        "[loom.definition.type] /: expected an object, got array");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": 7, "version": 1, "steps": []})"),
                        "[loom.definition.type] /name: expected a string, got number");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "wf", "version": "1", "steps": []})"),
                        "[loom.definition.type] /version: expected a positive integer, got string");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "wf", "version": -2, "steps": []})"),
                        "[loom.definition.type] /version: expected a positive integer, got -2");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "wf", "version": 1.5, "steps": []})"),
                        "[loom.definition.type] /version: expected a positive integer, got 1.5");
    REQUIRE_THROWS_WITH(
        Workflow::from_json(R"({"name": "wf", "version": 9223372036854775808, "steps": []})"),
        "[loom.definition.type] /version: expected a positive integer of at most "
        "9223372036854775807, got 9223372036854775808");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "wf", "version": 1, "steps": {}})"),
                        "[loom.definition.type] /steps: expected an array, got object");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"(["a"])")),
                        "[loom.definition.type] /steps/0: expected an object, got string");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": 1, "handler": "h"}])")),
                        "[loom.definition.type] /steps/0/id: expected a string, got number");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a", "handler": null}])")),
                        "[loom.definition.type] /steps/0/handler: expected a string, got null");
    REQUIRE_THROWS_WITH(
        Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h", "depends_on": "b"}])")),
        "[loom.definition.type] /steps/0/depends_on: expected an array, got string");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"}, {"id": "b", "handler": "h"},
        {"id": "c", "handler": "h", "depends_on": [2]}])")),
                        "[loom.definition.type] /steps/2/depends_on/0: expected a string, got number");
}

TEST_CASE("Missing and unknown keys", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "wf", "version": 1})"),
                        "[loom.definition.missing_key] /: missing required key \"steps\"");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a"}])")),
                        "[loom.definition.missing_key] /steps/0: missing required key \"handler\"");
    REQUIRE_THROWS_WITH(
        Workflow::from_json(R"({"name": "wf", "version": 1, "steps": [], "descr/iption": ""})"),
        "[loom.definition.unknown_key] /descr~1iption: unknown key \"descr/iption\"; allowed keys "
        "are name, version, steps, defaults, deadline_ms");
    REQUIRE_THROWS_WITH(
        Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h", "retries": 3}])")),
        "[loom.definition.unknown_key] /steps/0/retries: unknown key \"retries\"; allowed keys are "
        "id, handler, input, depends_on, retry, timeout_ms, on_error, compensate, when, "
        "run_if_skipped, for_each, max_parallel");
}

TEST_CASE("A workflow needs a step", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps("[]")),
                        "[loom.definition.empty] /steps: a workflow needs at least one step");
}

TEST_CASE("Malformed ids say which rule they break", "[model]") {
    auto step_id = [](const std::string& id) {
        return Workflow::from_json(Json{{"name", "wf"}, {"version", 1},
                                        {"steps", {{{"id", id}, {"handler", "h"}}}}});
    };
    REQUIRE_NOTHROW(step_id("_a-B9"));
    REQUIRE_NOTHROW(step_id(std::string(128, 'a')));
    REQUIRE_THROWS_WITH(step_id(""), "[loom.definition.bad_id] /steps/0/id: step id must not be empty");
    REQUIRE_THROWS_WITH(step_id(std::string(129, 'a')),
                        "[loom.definition.bad_id] /steps/0/id: step id is 129 characters long; the "
                        "limit is 128 (^[A-Za-z_][A-Za-z0-9_-]{0,127}$)");
    REQUIRE_THROWS_WITH(step_id("9a"),
                        "[loom.definition.bad_id] /steps/0/id: step id \"9a\" must start with a "
                        "letter or '_' (^[A-Za-z_][A-Za-z0-9_-]{0,127}$)");
    REQUIRE_THROWS_WITH(step_id("a.b"),
                        "[loom.definition.bad_id] /steps/0/id: step id \"a.b\" has '.' at index 1; "
                        "only letters, digits, '_' and '-' may follow the first character "
                        "(^[A-Za-z_][A-Za-z0-9_-]{0,127}$)");
    REQUIRE_THROWS_WITH(step_id("a\n"),
                        "[loom.definition.bad_id] /steps/0/id: step id \"a\\n\" has byte 0x0A at "
                        "index 1; only letters, digits, '_' and '-' may follow the first character "
                        "(^[A-Za-z_][A-Za-z0-9_-]{0,127}$)");

    REQUIRE_NOTHROW(Workflow::from_json(R"({"name": "9.a-b_", "version": 1,
        "steps": [{"id": "a", "handler": "0_a.b:c/d-e"}]})"));
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": ".wf", "version": 1, "steps": []})"),
                        "[loom.definition.bad_id] /name: workflow name \".wf\" must start with a "
                        "letter, digit or '_' (^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)");
    REQUIRE_THROWS_WITH(Workflow::from_json(R"({"name": "w f", "version": 1, "steps": []})"),
                        "[loom.definition.bad_id] /name: workflow name \"w f\" has ' ' at index 1; "
                        "only letters, digits, '_', '.' and '-' may follow the first character "
                        "(^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a", "handler": ""}])")),
                        "[loom.definition.bad_id] /steps/0/handler: handler name must not be empty");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a", "handler": "http get"}])")),
                        "[loom.definition.bad_id] /steps/0/handler: handler name \"http get\" has "
                        "' ' at index 4; only letters, digits, '_', '.', ':', '/' and '-' may follow "
                        "the first character (^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$)");
}

TEST_CASE("Duplicate ids name both positions", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"}, {"id": "b", "handler": "h"}, {"id": "a", "handler": "h"}])")),
                        "[loom.definition.duplicate_id] /steps/2/id: step id \"a\" is already used "
                        "by /steps/0");
}

TEST_CASE("Dependencies must name other steps, once each", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"}, {"id": "b", "handler": "h", "depends_on": ["a", "x"]}])")),
                        "[loom.definition.unknown_dependency] /steps/1/depends_on/1: step \"b\" "
                        "depends on unknown step \"x\"");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"}, {"id": "b", "handler": "h", "depends_on": ["a", "b"]}])")),
                        "[loom.definition.self_dependency] /steps/1/depends_on/1: step \"b\" "
                        "depends on itself");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"}, {"id": "c", "handler": "h"},
        {"id": "b", "handler": "h", "depends_on": ["a", "c", "a"]}])")),
                        "[loom.definition.duplicate_dependency] /steps/2/depends_on/2: step \"a\" "
                        "is listed twice (first at /steps/2/depends_on/0)");
    // Forward references are fine: order in the document is not execution order.
    REQUIRE_NOTHROW(Workflow::from_json(with_steps(R"([
        {"id": "b", "handler": "h", "depends_on": ["a"]}, {"id": "a", "handler": "h"}])")));
}

TEST_CASE("A cycle is named step by step", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h", "depends_on": ["b"]},
        {"id": "b", "handler": "h", "depends_on": ["c"]},
        {"id": "c", "handler": "h", "depends_on": ["a"]}])")),
                        "[loom.definition.cycle] /steps/0/depends_on: steps a -> b -> c -> a form a "
                        "cycle (each step depends on the next)");
    // Only the loop is named, not the steps that merely depend on it, and it is
    // written from its earliest step in the document.
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "w", "handler": "h", "depends_on": ["z"]},
        {"id": "root", "handler": "h"},
        {"id": "x", "handler": "h", "depends_on": ["root", "z"]},
        {"id": "y", "handler": "h", "depends_on": ["root", "x"]},
        {"id": "z", "handler": "h", "depends_on": ["y"]}])")),
                        "[loom.definition.cycle] /steps/2/depends_on: steps x -> z -> y -> x form a "
                        "cycle (each step depends on the next)");
}

TEST_CASE("References must be well formed and name upstream steps", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h", "input": {"list": [1, {"url": "x${input.url"}]}}])")),
                        "[loom.definition.bad_reference] /steps/0/input/list/1/url: reference "
                        "\"${input.url\" is not terminated by '}'");
    // b runs in parallel with a: its output may not exist yet.
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h", "input": "${steps.b.output}"},
        {"id": "b", "handler": "h"}])")),
                        "[loom.definition.bad_reference] /steps/0/input: ${steps.b.output} names "
                        "step \"b\", which is not upstream of step \"a\" (list it in depends_on, "
                        "directly or through another step)");
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h", "input": {"me": "${steps.a.output}"}}])")),
                        "[loom.definition.bad_reference] /steps/0/input/me: ${steps.a.output} "
                        "names step \"a\", which is not upstream of step \"a\" (list it in "
                        "depends_on, directly or through another step)");
    // Upstream through other steps is enough.
    REQUIRE_NOTHROW(Workflow::from_json(with_steps(R"([
        {"id": "c", "handler": "h", "depends_on": ["b"], "input": "${steps.a.output.x}"},
        {"id": "b", "handler": "h", "depends_on": ["a"]},
        {"id": "a", "handler": "h"}])")));
}

TEST_CASE("The first error in document order is reported", "[model]") {
    REQUIRE_THROWS_WITH(Workflow::from_json(with_steps(R"([
        {"id": "a", "handler": "h"},
        {"id": "b", "handler": "h", "depends_on": ["nope"]},
        {"id": "c", "handler": "h", "depends_on": ["gone"]}])")),
                        "[loom.definition.unknown_dependency] /steps/1/depends_on/0: step \"b\" "
                        "depends on unknown step \"nope\"");
}

TEST_CASE("Definition limits have safe defaults", "[model]") {
    DefinitionLimits limits;
    REQUIRE(limits.max_steps == 10'000);
    REQUIRE(limits.max_depth == 64);
    REQUIRE(limits.max_bytes == 1024 * 1024);
}

TEST_CASE("Definitions over the size limit are refused", "[model]") {
    DefinitionLimits limits;
    limits.max_bytes = 80;
    const std::string small = with_steps(R"([{"id": "a", "handler": "h"}])");
    REQUIRE(small.size() <= 80);
    REQUIRE_NOTHROW(Workflow::from_json(small, limits));
    const std::string big = with_steps(R"([{"id": "a", "handler": "h", "input": "0123456789"}])");
    REQUIRE_THROWS_WITH(Workflow::from_json(big, limits),
                        "[loom.definition.too_large] /: definition is " + std::to_string(big.size()) +
                            " bytes; the limit is 80");
    // The Json overload measures its compact text.
    const Json json = Json::parse(big);
    REQUIRE_THROWS_WITH(Workflow::from_json(json, limits),
                        "[loom.definition.too_large] /: definition is " +
                            std::to_string(json.dump().size()) + " bytes; the limit is 80");
    REQUIRE_THROWS_WITH(Workflow::from_json(std::string(2 << 20, ' ')),
                        "[loom.definition.too_large] /: definition is 2097152 bytes; the limit is "
                        "1048576");
}

TEST_CASE("Definitions nested too deeply are refused before parsing", "[model]") {
    // Depth 3 is taken by the document, the steps array and the step.
    auto nested_input = [](std::size_t levels) {
        return with_steps(R"([{"id": "a", "handler": "h", "input": )" + std::string(levels, '[') +
                          std::string(levels, ']') + "}]");
    };
    REQUIRE_NOTHROW(Workflow::from_json(nested_input(61)));
    REQUIRE_THROWS_WITH(Workflow::from_json(nested_input(62)),
                        "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64");
    REQUIRE_THROWS_WITH(Workflow::from_json(Json::parse(nested_input(62))),
                        "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64");

    // Brackets inside strings are text, not nesting (escaped quotes included).
    REQUIRE_NOTHROW(Workflow::from_json(
        with_steps(R"([{"id": "a", "handler": "h", "input": "\"[{)" + std::string(100, '[') + "\"}]")));

    DefinitionLimits shallow;
    shallow.max_depth = 3;
    REQUIRE_NOTHROW(Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h"}])"), shallow));
    REQUIRE_THROWS_WITH(
        Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h", "input": {}}])"), shallow),
        "[loom.definition.too_deep] /: nesting depth exceeds the limit of 3");
}

TEST_CASE("A million open brackets is an error, not a crash", "[model]") {
    const std::string hostile(1'000'000, '[');
    REQUIRE_THROWS_WITH(Workflow::from_json(hostile),
                        "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64");
    // The same through the Json overload, whose dump() would otherwise recurse.
    const Json deep = Json::parse(hostile + std::string(1'000'000, ']'));
    REQUIRE_THROWS_WITH(Workflow::from_json(deep),
                        "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64");
}

TEST_CASE("Step counts over the limit are refused", "[model]") {
    DefinitionLimits limits;
    limits.max_steps = 2;
    const std::string three = with_steps(R"([{"id": "a", "handler": "h"}, {"id": "b", "handler": "h"},
                                             {"id": "c", "handler": "h"}])");
    REQUIRE_NOTHROW(Workflow::from_json(three));
    REQUIRE_THROWS_WITH(Workflow::from_json(three, limits),
                        "[loom.definition.too_many_steps] /steps: 3 steps; the limit is 2");

    Json steps = Json::array();
    for (int i = 0; i <= 10'000; ++i) steps.push_back({{"id", "s" + std::to_string(i)}, {"handler", "h"}});
    REQUIRE_THROWS_WITH(Workflow::from_json(Json{{"name", "wf"}, {"version", 1}, {"steps", steps}}),
                        "[loom.definition.too_many_steps] /steps: 10001 steps; the limit is 10000");
}

TEST_CASE("A 10,000-step chain validates", "[model]") {
    WorkflowBuilder builder("chain", 1);
    builder.step("s0", "h");
    for (int i = 1; i < 10'000; ++i) {
        // Each step reads the first one: upstream only through the whole chain.
        builder.step("s" + std::to_string(i), "h")
            .after("s" + std::to_string(i - 1))
            .input("${steps.s0.output}");
    }
    Workflow wf = builder.build();
    REQUIRE(wf.steps().size() == 10'000);
    REQUIRE(loom::detail::Plan::of(wf).sinks == std::vector<std::uint32_t>{9'999});
    REQUIRE(loom::detail::Plan::of(wf).steps[9'999].substitutions.size() == 1);
}

namespace {

std::string write_file(const loom::test::TempDir& dir, const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name), std::ios::binary) << text;
    return dir.file(name);
}

}  // namespace

TEST_CASE("from_file reads a definition, and every error names the file", "[model]") {
    loom::test::TempDir dir;
    const auto good = write_file(dir, "good.json", R"({"name": "wf", "version": 2, "steps": [{"id": "a", "handler": "h"}]})");
    CHECK(Workflow::from_file(good).to_json() == Workflow::from_json(R"({"name": "wf", "version": 2,
        "steps": [{"id": "a", "handler": "h"}]})").to_json());

    const auto missing = dir.file("missing.json");
    CHECK_THROWS_WITH(Workflow::from_file(missing),
                      "[loom.definition.file] " + missing + ": cannot open: No such file or directory");
    CHECK_THROWS_AS(Workflow::from_file(dir.path()), DefinitionError);   // a directory cannot be read

    const auto syntax = write_file(dir, "syntax.json", "{\"name\": \"wf\",\n \"version\": 1,\n \"steps\": [}\n");
    CHECK_THROWS_WITH(Workflow::from_file(syntax),
                      "[loom.definition.json] " + syntax + ": /: invalid JSON at byte 42: parse error at line 3, "
                      "column 12: syntax error while parsing value - unexpected '}'; expected '[', '{', or a literal");

    const auto cycle = write_file(dir, "cycle.json", with_steps(R"([{"id": "a", "handler": "h", "depends_on": ["a"]}])"));
    CHECK_THROWS_WITH(Workflow::from_file(cycle), "[loom.definition.self_dependency] " + cycle +
                                                      ": /steps/0/depends_on/0: step \"a\" depends on itself");

    DefinitionLimits small;
    small.max_bytes = 10;
    CHECK_THROWS_WITH(Workflow::from_file(good, small),
                      "[loom.definition.too_large] " + good + ": the file is larger than the limit of 10 bytes");
}

TEST_CASE("a step's input may read an upstream step's status and error but a compensation or for_each may not",
          "[model][reference]") {
    auto wf = Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h", "on_error": "continue"},
        {"id": "b", "handler": "h", "depends_on": ["a"],
         "input": {"why": "${steps.a.error}", "status": "${steps.a.status}"}}])"));
    CHECK(wf.steps()[1].input == Json{{"why", "${steps.a.error}"}, {"status", "${steps.a.status}"}});

    CHECK_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h"},
        {"id": "b", "handler": "h", "input": {"why": "${steps.a.error}"}}])")),
                      "[loom.definition.bad_reference] /steps/1/input/why: ${steps.a.error} names step \"a\", "
                      "which is not upstream of step \"b\" (list it in depends_on, directly or through "
                      "another step)");
    CHECK_THROWS_WITH(Workflow::from_json(with_steps(R"([{"id": "a", "handler": "h"},
        {"id": "b", "handler": "h", "depends_on": ["a"], "for_each": "${steps.a.status}"}])")),
                      "[loom.definition.bad_for_each] /steps/1/for_each: \"${steps.a.status}\" must be one "
                      "reference to an array, such as \"${input.items}\" or \"${steps.ID.output.items}\"");
}
