// Operator controls: running a finished run again (retry, rerun). Stopping an
// executor with handlers in flight is in executor_test.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::StepStatus;
using loom::test::Fixture;

namespace {

/// "flaky" fails while `broken`; "ok" returns its step id and call count.
struct Flaky : loom::test::Steps {
    std::atomic<bool> broken{true};
    Flaky() {
        handlers.add("ok", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            return ctx.step_id() + std::to_string(counter.get(ctx.step_id()));
        });
        handlers.add("flaky", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            if (broken) throw std::runtime_error("down");
            return "up";
        });
    }
    static loom::Workflow chain() {
        loom::RetryPolicy twice;
        twice.max_attempts = 2;
        twice.initial_backoff = 1ms;
        return loom::WorkflowBuilder("chain", 1)
            .step("a", "ok")
            .step("b", "flaky").after("a").retry(twice)
            .step("c", "ok").after("b")
            .build();
    }
};

}  // namespace

TEST_CASE("retry runs a failed run again from its failed steps", "[engine][operator]") {
    Fixture<Flaky> f;
    auto& executor = f.open({Flaky::chain()});
    auto id = executor.start("chain");
    auto failed = executor.wait(id);
    REQUIRE(failed.status == loom::RunStatus::failed);
    CHECK(failed.step("b")->attempts == 2);
    f.broken = false;
    executor.retry(id);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.error.empty());
    CHECK(run.output == Json{{"c", "c1"}});
    CHECK(run.step("a")->output == "a1");   // kept, not run again
    CHECK(f.counter.get("a") == 1);
    CHECK(run.step("b")->attempts == 3);
    std::vector<std::string> kinds;
    for (const auto& e : executor.history(id))
        if (e.step_id.empty()) kinds.push_back(e.kind);
    CHECK(kinds == std::vector<std::string>{loom::event::run_started, loom::event::run_failed, loom::event::run_retried, loom::event::run_completed});
}

TEST_CASE("a retried step gets its whole retry policy again", "[engine][operator]") {
    Fixture<Flaky> f;
    auto& executor = f.open({Flaky::chain()});
    auto id = executor.start("chain");
    executor.wait(id);
    executor.retry(id);   // still broken: two more attempts
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("b")->attempts == 4);
    CHECK(f.counter.get("b") == 4);
}

// A step that failed under on_error "continue" let its dependents run; retry()
// runs it again, and its end must not release (or count down) a dependent
// that completed long ago.
TEST_CASE("retry runs a step that failed under continue again and leaves its completed dependents done",
          "[engine][operator]") {
    Fixture<Flaky> f;
    auto wf = loom::WorkflowBuilder("proceed", 1)
                  .step("a", "flaky").on_error(loom::OnError::proceed)
                  .step("b", "ok").after("a")
                  .step("c", "flaky").after({"a", "b"})   // after a's retry, not beside it
                  .build();
    auto& executor = f.open({wf});
    auto id = executor.start("proceed");
    REQUIRE(executor.wait(id).status == loom::RunStatus::failed);   // c failed
    executor.retry(id);   // a and c run again, and fail again
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(f.counter.get("a") == 2);
    CHECK(f.counter.get("b") == 1);
    CHECK(run.step("b")->status == StepStatus::completed);
    CHECK(f.counter.get("c") == 2);
}

TEST_CASE("rerun runs a step and everything downstream again, keeping what is upstream", "[engine][operator]") {
    Fixture<Flaky> f;
    f.broken = false;
    auto& executor = f.open({Flaky::chain()});
    auto id = executor.start("chain");
    CHECK(executor.wait(id).output == Json{{"c", "c1"}});
    executor.rerun(id, "b");
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"c", "c2"}});
    CHECK(f.counter.get("a") == 1);
    CHECK(f.counter.get("b") == 2);
    CHECK(run.step("b")->attempts == 2);
}

TEST_CASE("retry and rerun run the steps a failed run never reached (cancelled) again", "[engine][operator]") {
    Fixture<Flaky> f;
    // "slow" and "side" are not downstream of "b", but the run ended before
    // they finished: "slow" was waiting an hour for its retry, or never ran.
    loom::RetryPolicy hourly;
    hourly.max_attempts = 2;
    hourly.initial_backoff = 1h;
    hourly.max_backoff = 1h;
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("a", "ok")
                                 .step("b", "flaky").after("a")
                                 .step("c", "ok").after("b")
                                 .step("slow", "flaky").retry(hourly)
                                 .step("side", "ok").after("slow")
                                 .build()},
                            {1});
    auto id = executor.start("w");
    auto failed = executor.wait(id);
    REQUIRE(failed.status == loom::RunStatus::failed);
    for (const char* step : {"c", "slow", "side"}) CHECK(failed.step(step)->status == StepStatus::cancelled);
    f.broken = false;
    SECTION("retry") {
        executor.retry(id);
    }
    SECTION("rerun from the failed step: cancelled steps not downstream of it run too") {
        executor.rerun(id, "b");
    }
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    for (const char* step : {"a", "b", "c", "slow", "side"})
        CHECK(run.step(step)->status == StepStatus::completed);
    CHECK(f.counter.get("a") == 1);
    CHECK(f.counter.get("c") == 1);
    CHECK(f.counter.get("side") == 1);
}

TEST_CASE("runs that cannot be run again are refused and left as they are", "[engine][operator]") {
    Fixture<Flaky> f;
    auto& executor = f.open({Flaky::chain()});
    CHECK_THROWS_WITH(executor.retry("nope"), "[loom.run.unknown] run nope does not exist");
    auto id = executor.start("chain");
    auto before = executor.wait(id);
    CHECK_THROWS_WITH(executor.rerun(id, "zz"), "[loom.step.unknown] run " + id + " has no step \"zz\"");
    auto after = executor.get_run(id);
    CHECK(after.status == before.status);
    CHECK(executor.history(id).size() == executor.history(id).size());

    // A running run is refused.
    f.handlers.add("hold", [&](loom::StepContext&) -> Json {
        f.gate.pass();
        return 1;
    });
    executor.add_workflow(loom::WorkflowBuilder("held", 1).step("h", "hold").build());
    auto held = executor.start("held");
    f.gate.wait_for_waiters(1);
    CHECK_THROWS_WITH(executor.retry(held),
                      "[loom.run.not_final] run " + held + " is still running; only a finished run can be run again");
    f.gate.release();
    executor.wait(held);

    // A compensated run is refused.
    f.handlers.add("undo", [](loom::StepContext&) -> Json { return nullptr; });
    executor.add_workflow(loom::WorkflowBuilder("saga", 1)
                              .step("a", "ok").compensate("undo")
                              .step("b", "flaky").after("a").on_error(loom::OnError::compensate)
                              .build());
    auto saga = executor.start("saga");
    REQUIRE(executor.wait(saga).step("a")->status == StepStatus::compensated);
    CHECK_THROWS_WITH(executor.retry(saga),
                      "[loom.run.compensated] run " + saga + " was compensated (step \"a\"); it cannot be run again");
}

TEST_CASE("a retried run interrupted by a restart is resumed by recover()", "[engine][operator][sqlite]") {
    std::atomic<bool> hold{false};
    Fixture<Flaky> f(loom::test::Storage::sqlite);
    f.handlers.add("c_hold", [&](loom::StepContext& ctx) -> Json {
        f.counter.hit(ctx.step_id());
        if (hold) f.gate.pass();
        return "c";
    });
    const auto wf = loom::WorkflowBuilder("w", 1)
                        .step("a", "ok")
                        .step("b", "flaky").after("a")
                        .step("c", "c_hold").after("b")
                        .step("d", "ok").after("c")
                        .build();
    loom::RunId id;
    {
        auto& executor = f.open({wf});
        id = executor.start("w");
        REQUIRE(executor.wait(id).status == loom::RunStatus::failed);
        f.broken = false;
        hold = true;
        executor.retry(id);
        f.gate.wait_for_waiters(1);
        loom::test::release_later(f.gate);
        f.close();   // stops with "d" not started
    }
    CHECK(f.store().load_run(id)->status == loom::RunStatus::running);
    auto& executor = f.open();
    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(f.counter.get("a") == 1);
    CHECK(f.counter.get("c") == 1);
    CHECK(f.counter.get("d") == 1);
}
