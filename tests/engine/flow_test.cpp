// Conditions and error policies: which steps run, which are skipped, and
// whether a failure stops the run or lets it go on.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <loom/loom.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using loom::Json;
using loom::StepStatus;

namespace {

struct Fixture {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::test::RunCounter counter;
    Fixture() {
        handlers.add("echo", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            return ctx.input();
        });
        handlers.add("boom", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            throw std::runtime_error("boom");
        });
    }
};

}  // namespace

TEST_CASE("a false condition skips the step and, by default, everything after it", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .step("check", "echo").input({{"n", "${input.n}"}})
                              .step("big", "echo").after("check").when("${steps.check.output.n} > 10")
                              .step("after_big", "echo").after("big")
                              .step("small", "echo").after("check").when("${steps.check.output.n} <= 10")
                              .build());
    auto run = executor.wait(executor.start("w", {{"n", 3}}));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("big")->status == StepStatus::skipped);
    CHECK(run.step("after_big")->status == StepStatus::skipped);
    CHECK(run.step("small")->status == StepStatus::completed);
    CHECK(f.counter.get("big") == 0);
    CHECK(f.counter.get("after_big") == 0);
    // Sinks that were skipped report null.
    CHECK(run.output == Json{{"after_big", nullptr}, {"small", {{"check", {{"n", 3}}}}}});
    std::vector<std::string> skips;
    for (const auto& e : executor.history(run.id))
        if (e.kind == loom::event::step_skipped) skips.push_back(e.step_id + ": " + e.detail);
    CHECK(skips == std::vector<std::string>{
                       "big: condition \"${steps.check.output.n} > 10\" is false",
                       "after_big: dependency \"big\" was skipped"});

    auto other = executor.wait(executor.start("w", {{"n", 30}}));
    CHECK(other.step("big")->status == StepStatus::completed);
    CHECK(other.step("after_big")->status == StepStatus::completed);
    CHECK(other.step("small")->status == StepStatus::skipped);
}

TEST_CASE("a step may opt in to run after a skipped dependency", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .step("maybe", "echo").when("${input.go} == true")
                              .step("always", "echo").after("maybe").run_if_skipped()
                              .build());
    auto run = executor.wait(executor.start("w", {{"go", false}}));
    CHECK(run.step("maybe")->status == StepStatus::skipped);
    CHECK(run.step("always")->status == StepStatus::completed);
    CHECK(run.output == Json{{"always", {{"maybe", nullptr}}}});
}

TEST_CASE("a condition on the run's input decides before anything runs", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .step("a", "echo").when("${input.mode} == 'full' || ${input.force}")
                              .build());
    CHECK(executor.wait(executor.start("w", {{"mode", "full"}})).step("a")->status == StepStatus::completed);
    CHECK(executor.wait(executor.start("w", {{"mode", "quick"}, {"force", true}})).step("a")->status ==
          StepStatus::completed);
    CHECK(executor.wait(executor.start("w", {{"mode", "quick"}, {"force", false}})).step("a")->status ==
          StepStatus::skipped);
}

TEST_CASE("a condition that cannot be evaluated fails its step", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1).step("a", "echo").when("${input.n} < 3").build());
    auto run = executor.wait(executor.start("w", {{"n", "three"}}));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("a")->status == StepStatus::failed);
    CHECK(run.step("a")->attempts == 0);
    CHECK(run.step("a")->error.rfind("[loom.when.type]", 0) == 0);
    CHECK(f.counter.get("a") == 0);
}

TEST_CASE("on_error continue lets the run go on, and dependents see the failure", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .step("try", "boom").on_error(loom::OnError::proceed)
                              .step("fallback", "echo").after("try").when("${steps.try.status} == 'failed'")
                              .input({{"why", "${input.x}"}})
                              .step("happy", "echo").after("try").when("${steps.try.status} == 'completed'")
                              .step("report", "echo").after("try")
                              .build());
    auto run = executor.wait(executor.start("w", {{"x", 1}}));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.error.empty());
    CHECK(run.step("try")->status == StepStatus::failed);
    CHECK(run.step("try")->error == "boom");
    CHECK(run.step("fallback")->status == StepStatus::completed);
    CHECK(run.step("happy")->status == StepStatus::skipped);
    CHECK(run.step("report")->output == Json{{"try", nullptr}});
}

TEST_CASE("the condition can read a failed step's error", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .default_on_error(loom::OnError::proceed)
                              .step("try", "boom")
                              .step("on_boom", "echo").after("try").when("${steps.try.error} == 'boom'")
                              .build());
    auto run = executor.wait(executor.start("w"));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("on_boom")->status == StepStatus::completed);
}

TEST_CASE("on_error fail (the default) stops the run", "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .default_on_error(loom::OnError::proceed)
                              .step("try", "boom").on_error(loom::OnError::fail)
                              .step("next", "echo").after("try")
                              .build());
    auto run = executor.wait(executor.start("w"));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("next")->status == StepStatus::cancelled);
}

TEST_CASE("skips and tolerated failures are kept across a restart", "[engine][flow][sqlite]") {
    loom::test::TempDir dir;
    loom::HandlerRegistry handlers;
    loom::test::Gate gate;
    loom::test::RunCounter counter;
    handlers.add("echo", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        return ctx.step_id();
    });
    handlers.add("boom", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        throw std::runtime_error("boom");
    });
    handlers.add("hold", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        gate.pass();
        return "held";
    });
    const auto wf = loom::WorkflowBuilder("w", 1)
                        .step("skip", "echo").when("false")
                        .step("fail", "boom").on_error(loom::OnError::proceed)
                        .step("hold", "hold").after({"skip", "fail"}).run_if_skipped()
                        .step("end", "echo").after("hold")
                        .build();
    loom::RunId id;
    {
        loom::SqliteStore store(dir.file("runs.db"));
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(wf);
        id = executor.start("w");
        gate.wait_for_waiters(1);
        loom::test::release_later(gate);
    }
    loom::SqliteStore store(dir.file("runs.db"));
    loom::Executor executor(store, handlers, {2});
    executor.recover();
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("skip")->status == StepStatus::skipped);
    CHECK(run.step("fail")->status == StepStatus::failed);
    CHECK(counter.get("skip") == 0);
    CHECK(counter.get("fail") == 1);   // a settled failure is not retried by recovery
    CHECK(run.step("end")->status == StepStatus::completed);
}

TEST_CASE("a step after a failure under on_error continue receives its error and status in its input",
          "[engine][flow]") {
    Fixture f;
    loom::Executor executor(f.store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("w", 1)
                              .step("try", "boom").on_error(loom::OnError::proceed)
                              .step("skip", "echo").when("${input.never} == true")
                              .step("report", "echo").after({"try", "skip"})
                              .input({{"error", "${steps.try.error}"},
                                      {"status", "${steps.try.status}"},
                                      {"line", "${steps.try.status}: ${steps.try.error}"},
                                      {"skipped", "${steps.skip.status}"},
                                      {"no_error", "${steps.skip.error}"}})
                              .run_if_skipped()
                              .build());
    auto run = executor.wait(executor.start("w", {{"never", false}}));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("report")->output == Json{{"error", "boom"},
                                             {"status", "failed"},
                                             {"line", "failed: boom"},
                                             {"skipped", "skipped"},
                                             {"no_error", ""}});
}
