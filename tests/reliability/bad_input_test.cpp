// The bad input catalogue: definitions and calls Loom must refuse, each with the
// exact error a host sees, and proof that refusing changed nothing in the store.
// Also the handler results that cannot be stored, and the limits raised and
// lowered. One table per kind of input; each row runs on a fresh SqliteStore.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "support/temp_dir.hpp"

using loom::DefinitionLimits;
using loom::Json;
using loom::Workflow;

namespace {

loom::SqliteOptions fast() {
    loom::SqliteOptions options;
    options.synchronous = loom::SqliteOptions::Synchronous::normal;
    return options;
}

loom::TimePoint now() {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

/// A store holding one workflow ("hello": a, then b) and one completed run.
struct Fixture {
    loom::test::TempDir dir;
    loom::SqliteStore store{dir.file("runs.db"), fast()};
    loom::HandlerRegistry handlers;
    Workflow hello = loom::WorkflowBuilder("hello", 1).step("a", "h").step("b", "h").after("a").build();
    std::unique_ptr<loom::Executor> executor;
    loom::RunId done;

    Fixture() {
        handlers.add("h", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
        executor = std::make_unique<loom::Executor>(store, handlers, loom::ExecutorOptions{1});
        executor->add_workflow(hello);
        done = executor->start("hello");
        REQUIRE(executor->wait(done).status == loom::RunStatus::completed);
    }

    /// Records an unfinished run of hello v1 directly, as a crashed process
    /// would have left it, with `hash` as the definition it started with.
    void store_unfinished_run(const loom::RunId& id, const std::string& hash) {
        loom::RunInfo info;
        info.id = id;
        info.workflow_name = "hello";
        info.workflow_version = 1;
        info.workflow_hash = hash;
        info.created_at = info.updated_at = now();
        for (const char* s : {"a", "b"}) {
            info.steps.emplace_back();
            info.steps.back().step_id = s;
        }
        info.steps[0].status = loom::StepStatus::ready;
        info.owner = "crashed-process";   // its lease long expired
        info.lease_until = loom::TimePoint{};
        loom::Batch batch;
        batch.new_runs.push_back(info);
        store.commit(batch);
    }
};

/// Everything the store holds, to show that a refused call changed nothing.
Json snapshot(loom::Store& store) {
    Json out = {{"workflows", Json::array()}, {"runs", Json::array()}};
    for (const auto& w : store.list_workflows())
        out["workflows"].push_back({w.name, w.version, w.hash, w.definition});
    loom::RunFilter all;
    all.limit = 1'000;
    for (const auto& listed : store.list_runs(all)) {
        auto run = store.load_run(listed.id);
        REQUIRE(run);
        Json steps = Json::array();
        for (const auto& s : run->steps)
            steps.push_back({s.step_id, loom::to_string(s.status), s.attempts, s.output, s.error});
        Json events = Json::array();
        for (const auto& e : store.load_events(run->id))
            events.push_back({e.seq, e.step_id, e.kind, e.attempt, e.detail});
        out["runs"].push_back({run->id, loom::to_string(run->status), run->cancel_requested,
                               run->input, run->output, run->error, steps, events,
                               run->updated_at.time_since_epoch().count()});
    }
    return out;
}

std::string kind_of(const std::exception& e) {
    if (dynamic_cast<const loom::DefinitionError*>(&e)) return "DefinitionError";
    if (dynamic_cast<const loom::NotFound*>(&e)) return "NotFound";
    if (dynamic_cast<const loom::Conflict*>(&e)) return "Conflict";
    if (dynamic_cast<const loom::InvalidArgument*>(&e)) return "InvalidArgument";
    if (dynamic_cast<const loom::StoreError*>(&e)) return "StoreError";
    return "not a loom::Error";
}

/// One row: what is called, and the exception type and full message expected.
/// In `message`, {hash} stands for hello's hash and {dir} for the test directory.
struct Case {
    std::string name;
    std::string kind;
    std::string message;
    std::function<void(Fixture&)> call;
    std::function<void(Fixture&)> setup = nullptr;   // before the snapshot
};

std::string expand(std::string text, const Fixture& f) {
    for (auto [key, value] : {std::pair<std::string, std::string>{"{hash}", f.hello.hash()},
                              {"{dir}", f.dir.path().string()}}) {
        for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
            text.replace(at, key.size(), value);
    }
    return text;
}

void run_table(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        DYNAMIC_SECTION(c.name) {
            Fixture f;
            if (c.setup) c.setup(f);
            const Json before = snapshot(f.store);
            const auto handler_before = f.handlers.find("h");
            const std::string message = expand(c.message, f);
            REQUIRE_THROWS_WITH(c.call(f), message);
            try {
                c.call(f);   // refused again the same way: the first refusal left no trace
            } catch (const std::exception& e) {
                CHECK(kind_of(e) == c.kind);
                CHECK(e.what() == message);
            }
            CHECK(snapshot(f.store) == before);
            CHECK(f.handlers.find("h") == handler_before);
            CHECK_FALSE(f.handlers.contains(""));
        }
    }
}

/// A definition given as text, parsed and added: nothing may reach the store.
std::function<void(Fixture&)> add_text(std::string text, DefinitionLimits limits = {}) {
    return [text = std::move(text), limits](Fixture& f) {
        f.executor->add_workflow(Workflow::from_json(text, limits));
    };
}
std::function<void(Fixture&)> add_json(Json json, DefinitionLimits limits = {}) {
    return [json = std::move(json), limits](Fixture& f) {
        f.executor->add_workflow(Workflow::from_json(json, limits));
    };
}

/// A second executor on the fixture's store, one thread and these options
/// changed; with `recover`, it recovers.
std::function<void(Fixture&)> executor_with(void (*edit)(loom::ExecutorOptions&),
                                            bool recover = false) {
    return [edit, recover](Fixture& f) {
        loom::ExecutorOptions options{1};
        edit(options);
        loom::Executor executor(f.store, f.handlers, options);
        if (recover) executor.recover();
    };
}

std::string with_steps(const std::string& steps) {
    return R"({"name": "wf", "version": 1, "steps": )" + steps + "}";
}
/// One step "a" (handler h) with these further keys, as JSON text, e.g. `"when": ""`.
std::string with_step(const std::string& keys) {
    return with_steps(R"([{"id": "a", "handler": "h", )" + keys + "}]");
}
/// The same as a Json, for values JSON text cannot hold (NaN, infinity).
Json with_step_json(std::pair<std::string, Json> key) {
    Json step = {{"id", "a"}, {"handler", "h"}};
    step[key.first] = std::move(key.second);
    return {{"name", "wf"}, {"version", 1}, {"steps", {step}}};
}
/// A one-step workflow with this further top-level key, as JSON text.
std::string with_workflow_key(const std::string& key) {
    return R"({"name": "wf", "version": 1, "steps": [{"id": "a", "handler": "h"}], )" + key + "}";
}
/// One step "a" (handler h) with this input, as JSON text.
std::string with_input(const std::string& input) {
    return with_steps(R"([{"id": "a", "handler": "h", "input": )" + input + "}]");
}

Json steps_json(std::size_t n) {
    Json steps = Json::array();
    for (std::size_t i = 0; i < n; ++i) steps.push_back({{"id", "s" + std::to_string(i)}, {"handler", "h"}});
    return {{"name", "many"}, {"version", 1}, {"steps", steps}};
}

std::string nested(std::size_t levels) {
    return with_input(std::string(levels, '[') + std::string(levels, ']'));
}

DefinitionLimits bytes_limit(std::size_t n) {
    DefinitionLimits l;
    l.max_bytes = n;
    return l;
}
DefinitionLimits steps_limit(std::size_t n) {
    DefinitionLimits l;
    l.max_steps = n;
    return l;
}
DefinitionLimits depth_limit(std::size_t n) {
    DefinitionLimits l;
    l.max_depth = n;
    return l;
}

const std::string kStepRule = "(^[A-Za-z_][A-Za-z0-9_-]{0,127}$)";
const std::string kNameRule = "(^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)";
const std::string kHandlerRule = "(^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$)";

}  // namespace

TEST_CASE("bad definitions are refused with their exact error and store nothing", "[reliability][bad_input]") {
    const std::string huge_input = with_input('"' + std::string(1'100'000, 'x') + '"');
    const std::string huger_input = with_input('"' + std::string(2'200'000, 'x') + '"');
    const std::string compact = R"({"name":"wf","version":1,"steps":[{"id":"a","handler":"h"}]})";
    run_table({
        // Not JSON at all.
        {"empty text", "DefinitionError",
         "[loom.definition.json] /: invalid JSON at byte 1: parse error at line 1, column 1: "
         "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal",
         add_text("")},
        {"truncated text", "DefinitionError",
         "[loom.definition.json] /: invalid JSON at byte 39: parse error at line 1, column 39: "
         "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal",
         add_text(R"({"name": "wf", "version": 1, "steps": )")},
        {"text after the document", "DefinitionError",
         "[loom.definition.json] /: invalid JSON at byte 61: parse error at line 1, column 61: "
         "syntax error while parsing value - unexpected ','; expected end of input",
         add_text(compact + ",")},
        {"bytes that are not UTF-8 inside a string", "DefinitionError",
         "[loom.definition.json] /: invalid JSON at byte 13: parse error at line 1, column 13: "
         "syntax error while parsing value - invalid string: ill-formed UTF-8 byte; last read: "
         "'\"wf\xff'",
         add_text("{\"name\": \"wf\xff\", \"version\": 1, \"steps\": []}")},
        {"a lone UTF-16 surrogate escape", "DefinitionError",
         "[loom.definition.json] /: invalid JSON at byte 19: parse error at line 1, column 19: "
         "syntax error while parsing value - invalid string: surrogate U+D800..U+DBFF must be "
         "followed by U+DC00..U+DFFF; last read: '\"wf\\ud800\"'",
         add_text(R"({"name": "wf\ud800", "version": 1, "steps": []})")},
        {"a number too large for a double", "DefinitionError",
         "[loom.definition.json] /: invalid JSON: number overflow parsing '-1e400'",
         add_text(with_input("-1e400"))},
        {"a Json holding bytes that are not UTF-8", "DefinitionError",
         "[loom.definition.json] /: not valid as JSON text: invalid UTF-8 byte at index 2: 0x28",
         add_json({{"name", "wf"}, {"version", 1},
                   {"steps", {{{"id", "a"}, {"handler", "h"}, {"input", "x\xc3("}}}}})},

        // Wrong JSON types.
        {"a document that is an array", "DefinitionError",
         "[loom.definition.type] /: expected an object, got array", add_text("[]")},
        {"a name that is an array", "DefinitionError",
         "[loom.definition.type] /name: expected a string, got array",
         add_text(R"({"name": ["wf"], "version": 1, "steps": []})")},
        {"a version that is a boolean", "DefinitionError",
         "[loom.definition.type] /version: expected a positive integer, got boolean",
         add_text(R"({"name": "wf", "version": true, "steps": []})")},
        {"version 0", "DefinitionError",
         "[loom.definition.type] /version: expected a positive integer, got 0",
         add_text(R"({"name": "wf", "version": 0, "steps": []})")},
        {"a version written as a float", "DefinitionError",
         "[loom.definition.type] /version: expected a positive integer, got 2.0",
         add_text(R"({"name": "wf", "version": 2.0, "steps": []})")},
        {"a version beyond int64", "DefinitionError",
         "[loom.definition.type] /version: expected a positive integer of at most "
         "9223372036854775807, got 18446744073709551615",
         add_text(R"({"name": "wf", "version": 18446744073709551615, "steps": []})")},
        {"steps that are null", "DefinitionError",
         "[loom.definition.type] /steps: expected an array, got null", add_text(with_steps("null"))},
        {"a step that is a number", "DefinitionError",
         "[loom.definition.type] /steps/0: expected an object, got number", add_text(with_steps("[7]"))},
        {"a step id that is an object", "DefinitionError",
         "[loom.definition.type] /steps/0/id: expected a string, got object",
         add_text(with_steps(R"([{"id": {}, "handler": "h"}])"))},
        {"a handler that is an array", "DefinitionError",
         "[loom.definition.type] /steps/0/handler: expected a string, got array",
         add_text(with_steps(R"([{"id": "a", "handler": ["h"]}])"))},
        {"depends_on that is an object", "DefinitionError",
         "[loom.definition.type] /steps/1/depends_on: expected an array, got object",
         add_text(with_steps(R"([{"id": "a", "handler": "h"},
                                 {"id": "b", "handler": "h", "depends_on": {"a": true}}])"))},
        {"a dependency that is a boolean", "DefinitionError",
         "[loom.definition.type] /steps/0/depends_on/0: expected a string, got boolean",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "depends_on": [false]}])"))},

        // Missing and unknown keys.
        {"no name", "DefinitionError", "[loom.definition.missing_key] /: missing required key \"name\"",
         add_text(R"({"version": 1, "steps": []})")},
        {"a step without an id", "DefinitionError",
         "[loom.definition.missing_key] /steps/0: missing required key \"id\"",
         add_text(with_steps(R"([{"handler": "h"}])"))},
        {"an unknown top-level key", "DefinitionError",
         "[loom.definition.unknown_key] /retries: unknown key \"retries\"; allowed keys are name, "
         "version, steps, defaults, deadline_ms",
         add_text(R"({"name": "wf", "version": 1, "steps": [], "retries": 3})")},
        {"an unknown step key", "DefinitionError",
         "[loom.definition.unknown_key] /steps/0/retries: unknown key \"retries\"; allowed keys are "
         "id, handler, input, depends_on, retry, timeout_ms, on_error, compensate, when, "
         "run_if_skipped, for_each, max_parallel",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "retries": 3}])"))},
        {"no steps", "DefinitionError", "[loom.definition.empty] /steps: a workflow needs at least one step",
         add_text(with_steps("[]"))},

        // Step settings: retry.
        {"a retry that is a number", "DefinitionError",
         "[loom.definition.type] /steps/0/retry: expected an object, got number",
         add_text(with_step(R"("retry": 3)"))},
        {"an unknown retry key", "DefinitionError",
         "[loom.definition.unknown_key] /steps/0/retry/attempts: unknown key \"attempts\"; allowed "
         "keys are max_attempts, initial_backoff_ms, multiplier, max_backoff_ms, jitter",
         add_text(with_step(R"("retry": {"attempts": 3})"))},
        {"max_attempts 0", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got 0",
         add_text(with_step(R"("retry": {"max_attempts": 0})"))},
        {"negative max_attempts", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got -1",
         add_text(with_step(R"("retry": {"max_attempts": -1})"))},
        {"max_attempts over 1000", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got 1001",
         add_text(with_step(R"("retry": {"max_attempts": 1001})"))},
        {"max_attempts beyond uint64", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got 1e+20",
         add_text(with_step(R"("retry": {"max_attempts": 100000000000000000000})"))},
        {"fractional max_attempts", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got 2.5",
         add_text(with_step(R"("retry": {"max_attempts": 2.5})"))},
        {"max_attempts written as a float", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_attempts: expected an integer from 1 to "
         "1000, got 3.0",
         add_text(with_step(R"("retry": {"max_attempts": 3.0})"))},
        {"max_attempts that is a boolean", "DefinitionError",
         "[loom.definition.type] /steps/0/retry/max_attempts: expected an integer from 1 to 1000, "
         "got boolean",
         add_text(with_step(R"("retry": {"max_attempts": true})"))},
        {"a negative initial_backoff_ms", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/initial_backoff_ms: expected an integer from 0 "
         "to 86400000 (one day), got -1",
         add_text(with_step(R"("retry": {"initial_backoff_ms": -1})"))},
        {"an initial_backoff_ms too large for a double", "DefinitionError",
         "[loom.definition.json] /: invalid JSON: number overflow parsing '1e400'",
         add_text(with_step(R"("retry": {"initial_backoff_ms": 1e400})"))},
        {"an initial_backoff_ms in exponent notation", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/initial_backoff_ms: expected an integer from 0 "
         "to 86400000 (one day), got 1000.0",
         add_text(with_step(R"("retry": {"initial_backoff_ms": 1e3})"))},
        {"an initial_backoff_ms that is a string", "DefinitionError",
         "[loom.definition.type] /steps/0/retry/initial_backoff_ms: expected an integer from 0 to "
         "86400000 (one day), got string",
         add_text(with_step(R"("retry": {"initial_backoff_ms": "1000"})"))},
        {"a max_backoff_ms over a day", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_backoff_ms: expected an integer from 0 to "
         "86400000 (one day), got 86400001",
         add_text(with_step(R"("retry": {"max_backoff_ms": 86400001})"))},
        {"a max_backoff_ms below initial_backoff_ms", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/max_backoff_ms: max_backoff_ms (500) must be at "
         "least initial_backoff_ms (2000)",
         add_text(with_step(R"("retry": {"initial_backoff_ms": 2000, "max_backoff_ms": 500})"))},
        {"an initial_backoff_ms above the default max_backoff_ms", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry: max_backoff_ms (60000, the default) must be at "
         "least initial_backoff_ms (120000)",
         add_text(with_step(R"("retry": {"initial_backoff_ms": 120000})"))},
        {"a multiplier below 1", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/multiplier: expected a number from 1 to 100, "
         "got 0.5",
         add_text(with_step(R"("retry": {"multiplier": 0.5})"))},
        {"a multiplier over 100", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/multiplier: expected a number from 1 to 100, "
         "got 1e+300",
         add_text(with_step(R"("retry": {"multiplier": 1e300})"))},
        {"an infinite multiplier in a Json", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/multiplier: expected a number from 1 to 100, "
         "got inf",
         add_json(with_step_json(
             {"retry", {{"multiplier", std::numeric_limits<double>::infinity()}}}))},
        {"a multiplier that is null", "DefinitionError",
         "[loom.definition.type] /steps/0/retry/multiplier: expected a number from 1 to 100, got null",
         add_text(with_step(R"("retry": {"multiplier": null})"))},
        {"a negative jitter", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/jitter: expected a number from 0 to 1, got -0.1",
         add_text(with_step(R"("retry": {"jitter": -0.1})"))},
        {"a jitter over 1", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/jitter: expected a number from 0 to 1, got 2",
         add_text(with_step(R"("retry": {"jitter": 2})"))},
        {"a NaN jitter in a Json", "DefinitionError",
         "[loom.definition.bad_retry] /steps/0/retry/jitter: expected a number from 0 to 1, got nan",
         add_json(with_step_json({"retry", {{"jitter", std::nan("")}}}))},

        // Step settings: timeout, on_error, compensate, when, run_if_skipped.
        {"timeout_ms 0", "DefinitionError",
         "[loom.definition.bad_timeout] /steps/0/timeout_ms: expected an integer from 1 to 604800000 "
         "(one week), got 0",
         add_text(with_step(R"("timeout_ms": 0)"))},
        {"timeout_ms over a week", "DefinitionError",
         "[loom.definition.bad_timeout] /steps/0/timeout_ms: expected an integer from 1 to 604800000 "
         "(one week), got 604800001",
         add_text(with_step(R"("timeout_ms": 604800001)"))},
        {"a fractional timeout_ms", "DefinitionError",
         "[loom.definition.bad_timeout] /steps/0/timeout_ms: expected an integer from 1 to 604800000 "
         "(one week), got 0.5",
         add_text(with_step(R"("timeout_ms": 0.5)"))},
        {"a timeout_ms that is a string", "DefinitionError",
         "[loom.definition.type] /steps/0/timeout_ms: expected an integer from 1 to 604800000 (one "
         "week), got string",
         add_text(with_step(R"("timeout_ms": "5s")"))},
        {"an unknown on_error", "DefinitionError",
         "[loom.definition.bad_on_error] /steps/0/on_error: expected \"fail\", \"continue\" or "
         "\"compensate\", got \"retry\"",
         add_text(with_step(R"("on_error": "retry")"))},
        {"an on_error in capitals", "DefinitionError",
         "[loom.definition.bad_on_error] /steps/0/on_error: expected \"fail\", \"continue\" or "
         "\"compensate\", got \"Fail\"",
         add_text(with_step(R"("on_error": "Fail")"))},
        {"an on_error that is a number", "DefinitionError",
         "[loom.definition.type] /steps/0/on_error: expected a string, got number",
         add_text(with_step(R"("on_error": 1)"))},
        {"a compensate that is a string", "DefinitionError",
         "[loom.definition.type] /steps/0/compensate: expected an object, got string",
         add_text(with_step(R"("compensate": "undo")"))},
        {"a compensate without a handler", "DefinitionError",
         "[loom.definition.missing_key] /steps/0/compensate: missing required key \"handler\"",
         add_text(with_step(R"("compensate": {"input": {}})"))},
        {"an unknown compensate key", "DefinitionError",
         "[loom.definition.unknown_key] /steps/0/compensate/retry: unknown key \"retry\"; allowed "
         "keys are handler, input",
         add_text(with_step(R"("compensate": {"handler": "undo", "retry": {}})"))},
        {"a compensate handler that is a number", "DefinitionError",
         "[loom.definition.type] /steps/0/compensate/handler: expected a string, got number",
         add_text(with_step(R"("compensate": {"handler": 5})"))},
        {"a compensate handler name with a space", "DefinitionError",
         "[loom.definition.bad_id] /steps/0/compensate/handler: handler name \"un do\" has ' ' at "
         "index 2; only letters, digits, '_', '.', ':', '/' and '-' may follow the first character " +
             kHandlerRule,
         add_text(with_step(R"("compensate": {"handler": "un do"})"))},
        {"a compensate input naming a step that is not upstream", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/compensate/input/0: ${steps.b.output} names step "
         "\"b\", which is not upstream of step \"a\" (list it in depends_on, directly or through "
         "another step)",
         add_text(with_steps(R"([{"id": "a", "handler": "h",
                                  "compensate": {"handler": "u", "input": ["${steps.b.output}"]}},
                                 {"id": "b", "handler": "h", "depends_on": ["a"]}])"))},
        {"a compensate input reading a step's status", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/compensate/input/x: reference "
         "\"${steps.a.status}\" must continue with \".output\" after the step id: ${steps.ID.output} "
         "(a compensation's input cannot read a step's status or error: they change while the run "
         "compensates)",
         add_text(with_step(R"("compensate": {"handler": "u", "input": {"x": "${steps.a.status}"}})"))},
        {"an empty when", "DefinitionError",
         "[loom.definition.empty] /steps/0/when: a condition must not be empty; leave \"when\" out "
         "for a step that always runs",
         add_text(with_step(R"("when": "")"))},
        {"a when that is a boolean", "DefinitionError",
         "[loom.definition.type] /steps/0/when: expected a string, got boolean",
         add_text(with_step(R"("when": true)"))},
        {"a run_if_skipped that is a string", "DefinitionError",
         "[loom.definition.type] /steps/0/run_if_skipped: expected a boolean, got string",
         add_text(with_step(R"("run_if_skipped": "yes")"))},

        // for_each and max_parallel.
        {"a for_each that is an array", "DefinitionError",
         "[loom.definition.type] /steps/0/for_each: expected a string, got array",
         add_text(with_step(R"("for_each": [1, 2])"))},
        {"an empty for_each", "DefinitionError",
         "[loom.definition.bad_for_each] /steps/0/for_each: for_each must be one reference to an array, "
         "such as \"${input.items}\"; leave it out for a step that runs once",
         add_text(with_step(R"("for_each": "")"))},
        {"a for_each with text around its reference", "DefinitionError",
         "[loom.definition.bad_for_each] /steps/0/for_each: \"all ${input.xs}\" must be one reference "
         "to an array, such as \"${input.items}\" or \"${steps.ID.output.items}\"",
         add_text(with_step(R"("for_each": "all ${input.xs}")"))},
        {"a for_each naming a step that is not upstream", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/for_each: ${steps.b.output.xs} names step \"b\", "
         "which is not upstream of step \"a\" (list it in depends_on, directly or through another step)",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "for_each": "${steps.b.output.xs}"},
                                 {"id": "b", "handler": "h", "depends_on": ["a"]}])"))},
        {"a for_each over a built-in step", "DefinitionError",
         "[loom.definition.bad_for_each] /steps/0/for_each: handler \"sleep\" is built in; for_each "
         "runs a registered handler once per element",
         add_text(with_steps(R"([{"id": "a", "handler": "sleep", "for_each": "${input.xs}"}])"))},
        {"a max_parallel without for_each", "DefinitionError",
         "[loom.definition.bad_for_each] /steps/0/max_parallel: max_parallel limits the elements of a "
         "for_each; this step has no \"for_each\"",
         add_text(with_step(R"("max_parallel": 2)"))},
        {"a max_parallel of zero", "DefinitionError",
         "[loom.definition.bad_for_each] /steps/0/max_parallel: expected an integer from 1 to 1000000, "
         "got 0",
         add_text(with_step(R"("for_each": "${input.xs}", "max_parallel": 0)"))},
        {"an ${item} outside a for_each step", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input/x: reference \"${item.id}\" names the element "
         "of a for_each: only the \"input\" of a step with \"for_each\" may use it",
         add_text(with_step(R"("input": {"x": "${item.id}"})"))},
        {"an ${item} in a condition", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/when: reference \"${item}\" names the element of a "
         "for_each, which a condition cannot see",
         add_text(with_step(R"("for_each": "${input.xs}", "when": "${item} == 1")"))},
        {"an ${index} with a path", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input/x: reference \"${index.a}\" has a path; "
         "${index} is a number",
         add_text(with_step(R"("for_each": "${input.xs}", "input": {"x": "${index.a}"})"))},

        // Workflow settings: defaults and deadline_ms.
        {"defaults that are an array", "DefinitionError",
         "[loom.definition.type] /defaults: expected an object, got array",
         add_text(with_workflow_key(R"("defaults": [])"))},
        {"an unknown defaults key", "DefinitionError",
         "[loom.definition.unknown_key] /defaults/when: unknown key \"when\"; allowed keys are retry, "
         "timeout_ms, on_error",
         add_text(with_workflow_key(R"("defaults": {"when": "true"})"))},
        {"a default retry out of range", "DefinitionError",
         "[loom.definition.bad_retry] /defaults/retry/max_attempts: expected an integer from 1 to "
         "1000, got 0",
         add_text(with_workflow_key(R"("defaults": {"retry": {"max_attempts": 0}})"))},
        {"a default timeout out of range", "DefinitionError",
         "[loom.definition.bad_timeout] /defaults/timeout_ms: expected an integer from 1 to 604800000 "
         "(one week), got -5",
         add_text(with_workflow_key(R"("defaults": {"timeout_ms": -5})"))},
        {"an unknown default on_error", "DefinitionError",
         "[loom.definition.bad_on_error] /defaults/on_error: expected \"fail\", \"continue\" or "
         "\"compensate\", got \"ignore\"",
         add_text(with_workflow_key(R"("defaults": {"on_error": "ignore"})"))},
        {"deadline_ms 0", "DefinitionError",
         "[loom.definition.bad_deadline] /deadline_ms: expected an integer from 1 to 31536000000 "
         "(365 days), got 0",
         add_text(with_workflow_key(R"("deadline_ms": 0)"))},
        {"deadline_ms over a year", "DefinitionError",
         "[loom.definition.bad_deadline] /deadline_ms: expected an integer from 1 to 31536000000 "
         "(365 days), got 31536000001",
         add_text(with_workflow_key(R"("deadline_ms": 31536000001)"))},
        {"deadline_ms beyond int64", "DefinitionError",
         "[loom.definition.bad_deadline] /deadline_ms: expected an integer from 1 to 31536000000 "
         "(365 days), got 18446744073709551615",
         add_text(with_workflow_key(R"("deadline_ms": 18446744073709551615)"))},
        {"a deadline_ms that is a boolean", "DefinitionError",
         "[loom.definition.type] /deadline_ms: expected an integer from 1 to 31536000000 (365 days), "
         "got boolean",
         add_text(with_workflow_key(R"("deadline_ms": false)"))},

        // Bad ids.
        {"an empty workflow name", "DefinitionError",
         "[loom.definition.bad_id] /name: workflow name must not be empty",
         add_text(R"({"name": "", "version": 1, "steps": []})")},
        {"a workflow name of 129 characters", "DefinitionError",
         "[loom.definition.bad_id] /name: workflow name is 129 characters long; the limit is 128 " +
             kNameRule,
         add_json({{"name", std::string(129, 'w')}, {"version", 1}, {"steps", Json::array()}})},
        {"a step id that starts with a digit", "DefinitionError",
         "[loom.definition.bad_id] /steps/0/id: step id \"1st\" must start with a letter or '_' " +
             kStepRule,
         add_text(with_steps(R"([{"id": "1st", "handler": "h"}])"))},
        {"a step id with a non-ASCII letter", "DefinitionError",
         "[loom.definition.bad_id] /steps/0/id: step id \"caf\xc3\xa9\" has byte 0xC3 at index 3; "
         "only letters, digits, '_' and '-' may follow the first character " + kStepRule,
         add_text(with_steps("[{\"id\": \"caf\xc3\xa9\", \"handler\": \"h\"}]"))},
        {"a handler name with a space", "DefinitionError",
         "[loom.definition.bad_id] /steps/0/handler: handler name \"send mail\" has ' ' at index 4; "
         "only letters, digits, '_', '.', ':', '/' and '-' may follow the first character " +
             kHandlerRule,
         add_text(with_steps(R"([{"id": "a", "handler": "send mail"}])"))},

        // The graph.
        {"a duplicate step id", "DefinitionError",
         "[loom.definition.duplicate_id] /steps/1/id: step id \"a\" is already used by /steps/0",
         add_text(with_steps(R"([{"id": "a", "handler": "h"}, {"id": "a", "handler": "g"}])"))},
        {"an unknown dependency", "DefinitionError",
         "[loom.definition.unknown_dependency] /steps/0/depends_on/0: step \"a\" depends on unknown "
         "step \"ghost\"",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "depends_on": ["ghost"]}])"))},
        {"a step that depends on itself", "DefinitionError",
         "[loom.definition.self_dependency] /steps/0/depends_on/0: step \"a\" depends on itself",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "depends_on": ["a"]}])"))},
        {"a dependency listed twice", "DefinitionError",
         "[loom.definition.duplicate_dependency] /steps/1/depends_on/1: step \"a\" is listed twice "
         "(first at /steps/1/depends_on/0)",
         add_text(with_steps(R"([{"id": "a", "handler": "h"},
                                 {"id": "b", "handler": "h", "depends_on": ["a", "a"]}])"))},
        {"two steps that wait for each other", "DefinitionError",
         "[loom.definition.cycle] /steps/0/depends_on: steps a -> b -> a form a cycle (each step "
         "depends on the next)",
         add_text(with_steps(R"([{"id": "a", "handler": "h", "depends_on": ["b"]},
                                 {"id": "b", "handler": "h", "depends_on": ["a"]}])"))},

        // References in inputs.
        {"an unterminated reference", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input/to: reference \"${input.email\" is not "
         "terminated by '}'",
         add_text(with_input(R"({"to": "${input.email"})"))},
        {"a reference to neither input nor steps", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input: reference \"${env.HOME}\" must start with "
         "\"input\" or \"steps\"",
         add_text(with_input(R"("${env.HOME}")"))},
        {"a reference to an unknown step", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input/0: reference \"${steps.zz.output}\" names "
         "unknown step \"zz\"",
         add_text(with_input(R"(["${steps.zz.output}"])"))},
        {"a step reference without .output", "DefinitionError",
         "[loom.definition.bad_reference] /steps/1/input: reference \"${steps.a.result}\" must "
         "continue with \".output\", \".status\" or \".error\" after the step id: ${steps.ID.output}",
         add_text(with_steps(R"([{"id": "a", "handler": "h"},
             {"id": "b", "handler": "h", "depends_on": ["a"], "input": "${steps.a.result}"}])"))},
        {"a reference with an empty segment", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input: reference \"${input..x}\" has an empty "
         "segment",
         add_text(with_input(R"("${input..x}")"))},
        {"a reference with a space in a segment", "DefinitionError",
         "[loom.definition.bad_reference] /steps/0/input: reference \"${input.first name}\" has ' ' "
         "in segment \"first name\"; segments hold only letters, digits, '_' and '-'",
         add_text(with_input(R"("${input.first name}")"))},
        {"a reference to a step that is not upstream", "DefinitionError",
         "[loom.definition.bad_reference] /steps/1/input: ${steps.a.output} names step \"a\", which "
         "is not upstream of step \"b\" (list it in depends_on, directly or through another step)",
         add_text(with_steps(R"([{"id": "a", "handler": "h"},
                                 {"id": "b", "handler": "h", "input": "${steps.a.output}"}])"))},

        // Limits at their defaults: 1 MiB, 10,000 steps, depth 64.
        {"a definition over 1 MiB", "DefinitionError",
         "[loom.definition.too_large] /: definition is " + std::to_string(huge_input.size()) +
             " bytes; the limit is 1048576",
         add_text(huge_input)},
        {"10,001 steps", "DefinitionError",
         "[loom.definition.too_many_steps] /steps: 10001 steps; the limit is 10000",
         add_json(steps_json(10'001))},
        {"a million open brackets", "DefinitionError",
         "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64",
         add_text(std::string(1'000'000, '['))},
        {"a Json nested 1,000 deep", "DefinitionError",
         "[loom.definition.too_deep] /: nesting depth exceeds the limit of 64",
         add_json(Json::parse(nested(1'000)))},
        // Lowered and raised.
        {"a definition over a lowered byte limit", "DefinitionError",
         "[loom.definition.too_large] /: definition is " + std::to_string(with_input("[]").size()) +
             " bytes; the limit is 64",
         add_text(with_input("[]"), bytes_limit(64))},
        {"a definition over a raised byte limit", "DefinitionError",
         "[loom.definition.too_large] /: definition is " + std::to_string(huger_input.size()) +
             " bytes; the limit is 2097152",
         add_text(huger_input, bytes_limit(2 << 20))},
        {"a canonical form over the byte limit its text fits", "DefinitionError",
         "[loom.definition.too_large] /: definition is 76 bytes in canonical form; the limit is " +
             std::to_string(compact.size()),
         add_text(compact, bytes_limit(compact.size()))},
        {"steps over a lowered step limit", "DefinitionError",
         "[loom.definition.too_many_steps] /steps: 3 steps; the limit is 2",
         add_json(steps_json(3), steps_limit(2))},
        {"steps over a raised step limit", "DefinitionError",
         "[loom.definition.too_many_steps] /steps: 20001 steps; the limit is 20000",
         add_json(steps_json(20'001), [] {
             DefinitionLimits l = steps_limit(20'000);
             l.max_bytes = 4 << 20;
             return l;
         }())},
        {"nesting over a lowered depth limit", "DefinitionError",
         "[loom.definition.too_deep] /: nesting depth exceeds the limit of 4",
         add_text(with_input(R"({"a": {"b": 1}})"), depth_limit(4))},
        {"nesting over a raised depth limit", "DefinitionError",
         "[loom.definition.too_deep] /: nesting depth exceeds the limit of 200",
         add_text(nested(198), depth_limit(200))},
    });
}

TEST_CASE("raised limits admit what the defaults refuse", "[reliability][bad_input]") {
    Fixture f;
    DefinitionLimits raised;
    raised.max_bytes = 4 << 20;
    raised.max_steps = 20'000;
    raised.max_depth = 200;
    const std::string big = with_input('"' + std::string(1'100'000, 'x') + '"');
    REQUIRE_THROWS_AS(Workflow::from_json(big), loom::DefinitionError);
    REQUIRE(Workflow::from_json(big, raised).steps().size() == 1);
    REQUIRE_THROWS_AS(Workflow::from_json(steps_json(10'001)), loom::DefinitionError);
    REQUIRE(Workflow::from_json(steps_json(10'001), raised).steps().size() == 10'001);
    REQUIRE_THROWS_AS(Workflow::from_json(nested(62)), loom::DefinitionError);
    REQUIRE_NOTHROW(Workflow::from_json(nested(197), raised));

    // An executor loads stored definitions under its own limits: one with raised
    // limits runs what the defaults refuse.
    loom::ExecutorOptions options{1};
    options.limits = raised;
    loom::Executor executor(f.store, f.handlers, options);
    executor.add_workflow(Workflow::from_json(steps_json(10'001), raised));
    CHECK(executor.wait(executor.start("many")).status == loom::RunStatus::completed);
}

TEST_CASE("bad calls are refused with their exact error and change nothing", "[reliability][bad_input]") {
    auto registry_add = [](auto... args) {
        return [args...](Fixture& f) {
            f.handlers.add(args...);
            FAIL("accepted");
        };
    };
    run_table({
        // Unknown runs.
        {"get_run of an unknown run", "NotFound", "[loom.run.unknown] run nope does not exist",
         [](Fixture& f) { f.executor->get_run("nope"); }},
        {"wait for an unknown run", "NotFound", "[loom.run.unknown] run nope does not exist",
         [](Fixture& f) { f.executor->wait("nope"); }},
        {"wait_for an unknown run", "NotFound", "[loom.run.unknown] run nope does not exist",
         [](Fixture& f) { f.executor->wait_for("nope", std::chrono::milliseconds(1)); }},
        {"cancel an unknown run", "NotFound", "[loom.run.unknown] run nope does not exist",
         [](Fixture& f) { f.executor->cancel("nope"); }},
        {"history of an unknown run", "NotFound", "[loom.run.unknown] run nope does not exist",
         [](Fixture& f) { f.executor->history("nope"); }},
        {"wait for a run nobody is running", "Conflict",
         "[loom.run.not_live] run stuck-run is unfinished but no executor runs it now; call "
         "recover()",
         [](Fixture& f) { f.executor->wait("stuck-run"); },
         [](Fixture& f) { f.store_unfinished_run("stuck-run", f.hello.hash()); }},

        // Starting.
        {"start an unknown workflow", "NotFound", "[loom.workflow.unknown] workflow \"nope\" is not registered",
         [](Fixture& f) { f.executor->start("nope"); }},
        {"start an unknown version", "NotFound",
         "[loom.workflow.unknown] workflow \"hello\" version 7 is not registered",
         [](Fixture& f) { f.executor->start("hello", Json::object(), {7, ""}); }},
        {"start version 0", "NotFound",
         "[loom.workflow.unknown] workflow \"hello\" version 0 is not registered",
         [](Fixture& f) { f.executor->start("hello", Json::object(), {0, ""}); }},
        {"start a workflow whose handler is not registered", "NotFound",
         "[loom.handler.unknown] workflow \"mail\" step \"send\" uses handler \"smtp\", which is not "
         "registered",
         [](Fixture& f) { f.executor->start("mail"); },
         [](Fixture& f) {
             f.executor->add_workflow(
                 loom::WorkflowBuilder("mail", 1).step("render", "h").step("send", "smtp").build());
         }},

        // Definitions.
        {"add a version again with other content", "Conflict",
         "[loom.store.definition_conflict] workflow hello version 1 is stored with hash {hash}, not " +
             loom::WorkflowBuilder("hello", 1).step("a", "h").build().hash() +
             "; give changed content a new version",
         [](Fixture& f) {
             f.executor->add_workflow(loom::WorkflowBuilder("hello", 1).step("a", "h").build());
         }},

        // Recovery.
        {"recover a run whose stored definition hash differs", "Conflict",
         "[loom.run.definition_changed] run stale-run started with workflow \"hello\" version 1 "
         "hash 0123456789abcdef, but the stored definition has hash {hash}",
         [](Fixture& f) { f.executor->recover(); },
         [](Fixture& f) { f.store_unfinished_run("stale-run", "0123456789abcdef"); }},

        // Executor options.
        {"more than 1024 threads", "InvalidArgument",
         "[loom.options.threads] ExecutorOptions::threads is 1025; at most 1024",
         executor_with([](loom::ExecutorOptions& o) { o.threads = 1025; })},
        {"a zero step limit", "InvalidArgument",
         "[loom.options.limits] ExecutorOptions::limits must be positive (max_steps 0, max_depth 64, "
         "max_bytes 1048576)",
         executor_with([](loom::ExecutorOptions& o) { o.limits.max_steps = 0; })},
        {"a zero depth limit", "InvalidArgument",
         "[loom.options.limits] ExecutorOptions::limits must be positive (max_steps 10000, "
         "max_depth 0, max_bytes 1048576)",
         executor_with([](loom::ExecutorOptions& o) { o.limits.max_depth = 0; })},
        {"a zero byte limit", "InvalidArgument",
         "[loom.options.limits] ExecutorOptions::limits must be positive (max_steps 10000, "
         "max_depth 64, max_bytes 0)",
         executor_with([](loom::ExecutorOptions& o) { o.limits.max_bytes = 0; })},
        {"a negative shutdown grace", "InvalidArgument",
         "[loom.options.duration] ExecutorOptions::shutdown_grace is -1 ms; it must not be negative",
         executor_with([](loom::ExecutorOptions& o) { o.shutdown_grace = std::chrono::milliseconds(-1); })},
        {"a negative delivery poll", "InvalidArgument",
         "[loom.options.duration] ExecutorOptions::delivery_poll is -5 ms; it must not be negative",
         executor_with([](loom::ExecutorOptions& o) { o.delivery_poll = std::chrono::milliseconds(-5); })},

        // Handlers and the builder.
        {"a handler with an empty name", "InvalidArgument", "[loom.handler.bad_name] handler name is empty",
         registry_add(std::string(), loom::HandlerRegistry::Function(
                                         [](loom::StepContext&) -> Json { return 1; }))},
        {"a null handler object", "InvalidArgument", "[loom.handler.null] handler \"h\" is null",
         registry_add(std::string("h"), std::shared_ptr<loom::StepHandler>())},
        {"an empty handler function", "InvalidArgument", "[loom.handler.null] handler \"h\" is null",
         registry_add(std::string("h"), loom::HandlerRegistry::Function())},
        {"builder input() before step()", "InvalidArgument",
         "[loom.builder.no_step] input() configures the latest step; call step() first",
         [](Fixture&) { loom::WorkflowBuilder("wf", 1).input(Json::object()); }},
        {"builder retry() before step()", "InvalidArgument",
         "[loom.builder.no_step] retry() configures the latest step; call step() first",
         [](Fixture&) { loom::WorkflowBuilder("wf", 1).default_retry({3}).retry({3}); }},
        {"an unknown run status name", "InvalidArgument",
         "[loom.status.unknown] unknown run status \"done\"",
         [](Fixture&) { loom::parse_run_status("done"); }},
        {"an empty step status name", "InvalidArgument",
         "[loom.status.unknown] unknown step status \"\"",
         [](Fixture&) { loom::parse_step_status(""); }},

        // The store, called directly: a bad batch changes nothing.
        {"commit a run id that exists", "Conflict", "[loom.store.duplicate_run] run stuck-run already exists",
         [](Fixture& f) { f.store_unfinished_run("stuck-run", f.hello.hash()); },
         [](Fixture& f) { f.store_unfinished_run("stuck-run", f.hello.hash()); }},
        {"commit a run of a workflow that is not stored", "StoreError",
         "[loom.store.unknown_workflow] run r1: workflow ghost version 1 is not stored",
         [](Fixture& f) {
             loom::Batch batch;
             batch.new_runs.emplace_back();
             batch.new_runs.back().id = "r1";
             batch.new_runs.back().workflow_name = "ghost";
             batch.new_runs.back().workflow_version = 1;
             f.store.commit(batch);
         }},
        {"commit a write to a step that does not exist", "StoreError",
         "[loom.store.missing_row] step zz of run stuck-run does not exist",
         [](Fixture& f) {
             loom::Batch batch;
             batch.events.push_back(loom::RunEvent{0, "stuck-run", "a", loom::event::step_started, 1, "", now()});
             batch.steps.push_back(loom::StepWrite{"stuck-run", "zz", loom::StepStatus::completed, 1,
                                                   1, "", now(), now(), std::nullopt});
             f.store.commit(batch);
         },
         [](Fixture& f) { f.store_unfinished_run("stuck-run", f.hello.hash()); }},
        {"commit a write to a run that does not exist", "StoreError",
         "[loom.store.missing_row] run nope does not exist",
         [](Fixture& f) {
             loom::Batch batch;
             batch.runs.push_back(loom::RunWrite{"nope", loom::RunStatus::failed, false, {}, "x",
                                                 now(), now()});
             f.store.commit(batch);
         }},
    });
}

TEST_CASE("handler results that cannot be stored fail the run and name the step", "[reliability][bad_input]") {
    struct Bad {
        std::string name;
        std::function<Json(loom::StepContext&)> handler;
        std::string step_error;
    };
    const std::vector<Bad> cases{
        {"a string that is not UTF-8", [](loom::StepContext&) -> Json { return std::string("\xff\xfe"); },
         "[loom.payload.not_utf8] the output cannot be stored: [json.exception.type_error.316] invalid UTF-8 byte at index 0: 0xFF"},
        {"an object key that is not UTF-8",
         [](loom::StepContext&) -> Json { return Json{{"ok", 1}, {"k\xc3", 2}}; },
         "[loom.payload.not_utf8] the output cannot be stored: [json.exception.type_error.316] incomplete UTF-8 string; last byte: 0xC3"},
        {"bad bytes deep inside an array",
         [](loom::StepContext&) -> Json { return Json::array({1, {{"a", {"fine", "x\x80y"}}}}); },
         "[loom.payload.not_utf8] the output cannot be stored: [json.exception.type_error.316] invalid UTF-8 byte at index 1: 0x80"},
        {"an output nested deeper than the limit",
         [](loom::StepContext&) -> Json {
             Json root = Json::array();
             Json* cur = &root;
             for (int i = 0; i < 100'000; ++i) cur = &cur->emplace_back(Json::array());
             return root;
         },
         "[loom.payload.too_deep] the output is nested deeper than 256 levels"},
        {"an output larger than the limit",
         [](loom::StepContext&) -> Json { return std::string(17u << 20, 'x'); },
         "[loom.payload.too_large] the output is 17825794 bytes as JSON; the limit is 16777216"},
        {"an exception that is not a std::exception", [](loom::StepContext&) -> Json { throw 42; },
         "unknown exception (not derived from std::exception)"},
        {"an exception without a message",
         [](loom::StepContext&) -> Json { throw std::runtime_error(""); },
         "exception without a message"},
        {"input that names a missing key",
         [](loom::StepContext& ctx) -> Json { return ctx.input(); },
         "[loom.input.missing] ${input.user.name}: no key \"user\" in input"},
    };
    for (const Bad& c : cases) {
        DYNAMIC_SECTION(c.name) {
            Fixture f;
            f.handlers.add("bad", c.handler);
            f.executor->add_workflow(loom::WorkflowBuilder("bad", 1)
                                         .step("first", "h")
                                         .step("broken", "bad").after("first")
                                         .input({{"who", "${input.user.name}"}})
                                         .step("after", "h").after("broken")
                                         .build());
            const loom::RunInfo run = f.executor->wait(f.executor->start("bad"));
            CHECK(run.status == loom::RunStatus::failed);
            CHECK(run.error == "step \"broken\" failed: " + c.step_error);
            CHECK(run.output.is_null());
            CHECK(run.step("first")->status == loom::StepStatus::completed);
            CHECK(run.step("broken")->status == loom::StepStatus::failed);
            CHECK(run.step("broken")->error == c.step_error);
            CHECK(run.step("broken")->output.is_null());
            CHECK(run.step("after")->status == loom::StepStatus::cancelled);
            CHECK(run.step("after")->attempts == 0);
            // What was stored reads back: the store holds nothing it cannot give back.
            CHECK(snapshot(f.store)["runs"].size() == 2);
        }
    }
}
