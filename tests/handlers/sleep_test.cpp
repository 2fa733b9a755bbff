// The built-in "sleep" step: a durable timer that holds no thread.
#include <catch2/catch.hpp>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::test::eventually;

namespace {

loom::Workflow nap(Json input) {
    return loom::WorkflowBuilder("nap", 1)
        .step("before", "mark")
        .step("nap", "sleep").input(std::move(input)).after("before")
        .step("after", "mark").after("nap")
        .build();
}

void add_mark(loom::HandlerRegistry& h) {
    h.add("mark", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
}

}  // namespace

TEST_CASE("a sleep step waits on the clock, then the run goes on", "[handlers][sleep]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_mark(handlers);
    loom::Executor executor(store, handlers, {1, nullptr, {}, {}, &clock});
    executor.add_workflow(nap({{"ms", "${input.ms}"}}));
    const auto t0 = clock.now();
    auto id = executor.start("nap", {{"ms", 90'000}});
    REQUIRE(eventually([&] { return executor.get_run(id).step("nap")->status == loom::StepStatus::waiting; }));
    CHECK(executor.get_run(id).step("nap")->wake_at == t0 + 90'000ms);
    CHECK(executor.get_run(id).step("nap")->attempts == 0);
    // The only worker thread is free while the step sleeps.
    executor.add_workflow(loom::WorkflowBuilder("other", 1).step("a", "mark").build());
    CHECK(executor.wait(executor.start("other")).status == loom::RunStatus::completed);
    clock.advance(89'999ms);
    CHECK_FALSE(executor.wait_for(id, 30ms));
    clock.advance(1ms);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("nap")->status == loom::StepStatus::completed);
    CHECK(run.step("nap")->output.is_null());
    CHECK(run.output == Json{{"after", "after"}});
}

TEST_CASE("a sleep step may wake at an absolute time", "[handlers][sleep]") {
    loom::testing::FakeClock clock;   // 2026-01-01T00:00:00Z
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_mark(handlers);
    loom::Executor executor(store, handlers, {1, nullptr, {}, {}, &clock});
    executor.add_workflow(nap({{"until", "2026-01-01T00:00:05.250Z"}}));
    auto id = executor.start("nap");
    REQUIRE(eventually([&] { return executor.get_run(id).step("nap")->status == loom::StepStatus::waiting; }));
    CHECK(executor.get_run(id).step("nap")->wake_at == clock.now() + 5250ms);
    clock.advance(5250ms);
    CHECK(executor.wait(id).status == loom::RunStatus::completed);

    // A time already past wakes at once.
    loom::Executor other(store, handlers, {1, nullptr, {}, {}, &clock});
    other.add_workflow(loom::WorkflowBuilder("past", 1).step("nap", "sleep").input({{"until_ms", 0}}).build());
    CHECK(other.wait(other.start("past")).status == loom::RunStatus::completed);
}

TEST_CASE("a bad sleep input fails the step with a clear error", "[handlers][sleep]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_mark(handlers);
    loom::Executor executor(store, handlers, {1});
    executor.add_workflow(nap({{"ms", "${input.ms}"}}));
    const std::pair<Json, std::string> cases[] = {
        {{{"ms", -5}}, "[loom.sleep.input] sleep step input \"ms\" must be a non-negative integer of milliseconds, not -5"},
        {{{"ms", "soon"}}, "[loom.sleep.input] sleep step input \"ms\" must be a non-negative integer of milliseconds, not \"soon\""},
    };
    for (const auto& [input, message] : cases) {
        auto run = executor.wait(executor.start("nap", input));
        CHECK(run.status == loom::RunStatus::failed);
        CHECK(run.step("nap")->error == message);
        CHECK(run.step("after")->status == loom::StepStatus::cancelled);
    }
    executor.add_workflow(loom::WorkflowBuilder("bad_until", 1).step("nap", "sleep").input({{"until", "tomorrow"}}).build());
    CHECK(executor.wait(executor.start("bad_until")).step("nap")->error ==
          "[loom.sleep.input] sleep step input \"until\" must be a UTC time like \"2026-01-31T12:00:00Z\", not \"tomorrow\"");
    executor.add_workflow(loom::WorkflowBuilder("no_input", 1).step("nap", "sleep").build());
    CHECK(executor.wait(executor.start("no_input")).step("nap")->error ==
          "[loom.sleep.input] sleep step input must be an object with one of \"ms\", \"until_ms\", \"until\", not {}");
}

TEST_CASE("the names of built-in steps cannot be registered", "[handlers][sleep]") {
    loom::HandlerRegistry handlers;
    for (const char* name : {"sleep", "wait", "workflow:child"}) {
        CHECK_THROWS_WITH(handlers.add(name, [](loom::StepContext&) -> Json { return 1; }),
                          "[loom.handler.reserved] handler name \"" + std::string(name) +
                              "\" is reserved for a built-in step type");
        CHECK_FALSE(handlers.contains(name));
    }
}

TEST_CASE("a sleep survives a restart and wakes at its time", "[handlers][sleep][sqlite]") {
    loom::test::TempDir dir;
    loom::testing::FakeClock clock;
    loom::HandlerRegistry handlers;
    loom::test::RunCounter counter;
    handlers.add("mark", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        return ctx.step_id();
    });
    loom::RunId id;
    loom::TimePoint due;
    {
        loom::SqliteStore store(dir.file("runs.db"));
        loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
        executor.add_workflow(nap({{"ms", 3'600'000}}));
        id = executor.start("nap");
        REQUIRE(eventually([&] { return executor.get_run(id).step("nap")->status == loom::StepStatus::waiting; }));
        due = *executor.get_run(id).step("nap")->wake_at;
    }
    clock.advance(1'800'000ms);   // half the nap passes while no process runs
    loom::SqliteStore store(dir.file("runs.db"));
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.recover();
    CHECK_FALSE(executor.wait_for(id, 50ms));
    CHECK(executor.get_run(id).step("nap")->wake_at == due);   // not restarted from zero
    clock.set(due);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(counter.get("before") == 1);
    CHECK(counter.get("after") == 1);
}
