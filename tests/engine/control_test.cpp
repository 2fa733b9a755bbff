// Controls over how runs use the executor: pause and resume, priority, and
// concurrency limits per handler and per workflow.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::StepStatus;
using loom::test::Fixture;

namespace {

struct Chain : loom::test::Steps {
    Chain() {
        handlers.add("held", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            gate.pass();
            return 1;
        });
        handlers.add("ok", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            return 2;
        });
    }
    static loom::Workflow workflow() {
        return loom::WorkflowBuilder("chain", 1)
            .step("a", "held")
            .step("b", "ok").after("a")
            .step("c", "ok").after("b")
            .build();
    }
};

std::vector<std::string> run_events(loom::Executor& ex, const loom::RunId& id) {
    std::vector<std::string> kinds;
    for (const auto& e : ex.history(id))
        if (e.step_id.empty()) kinds.push_back(e.kind);
    return kinds;
}

}  // namespace

TEST_CASE("a paused run starts nothing new until it is resumed", "[engine][control]") {
    Fixture<Chain> f;
    auto& executor = f.open({Chain::workflow()});
    auto id = executor.start("chain");
    f.gate.wait_for_waiters(1);
    CHECK(executor.pause(id));
    CHECK(executor.get_run(id).paused);
    f.gate.release();   // "a" finishes; "b" must wait
    REQUIRE(loom::test::eventually([&] { return executor.get_run(id).step("a")->status == StepStatus::completed; }));
    CHECK_FALSE(executor.wait_for(id, 50ms));
    CHECK(f.counter.get("b") == 0);
    CHECK(executor.pause(id));   // already paused: no change
    CHECK(executor.resume(id));
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK_FALSE(run.paused);
    CHECK(run_events(executor, id) ==
          std::vector<std::string>{loom::event::run_started, loom::event::run_paused, loom::event::run_resumed, loom::event::run_completed});
    CHECK_FALSE(executor.pause(id));   // final
    CHECK_THROWS_WITH(executor.pause("nope"), "[loom.run.unknown] run nope does not exist");
}

// A paused run's ready steps wait as parked tasks, which point back at the run:
// an executor destroyed meanwhile must let go of them, or the run (with its
// handlers, definition and input) outlives the executor for good.
TEST_CASE("an executor destroyed with a paused run lets go of the run", "[engine][control]") {
    Fixture<Chain> f;
    auto& executor = f.open({Chain::workflow()});
    auto id = executor.start("chain");
    f.gate.wait_for_waiters(1);
    CHECK(executor.pause(id));
    f.gate.release();   // "a" finishes; "b" is parked
    REQUIRE(loom::test::eventually([&] { return executor.get_run(id).step("a")->status == StepStatus::completed; }));
    CHECK_FALSE(executor.wait_for(id, 50ms));
    const auto ok = f.handlers.find("ok");
    CHECK(ok.use_count() == 4);   // the registry, this test, and the run's "b" and "c"
    f.close();
    CHECK(ok.use_count() == 2);
}

// pause() holds a step whose timer comes due while the run is paused: a
// retry's backoff, or a sleep step. Time is a FakeClock, so the timer is due
// exactly when the test advances it.
TEST_CASE("a retry or a sleep that comes due while the run is paused waits for resume",
          "[engine][control][retry][sleep]") {
    const bool sleep = GENERATE(false, true);
    INFO((sleep ? "a sleep step" : "a retry backoff"));
    loom::testing::FakeClock clock;
    Fixture<> f;
    f.handlers.add("flaky", [&](loom::StepContext& ctx) -> Json {
        f.counter.hit(ctx.step_id());
        if (ctx.attempt() == 1) throw loom::RetryableError("not yet");
        return ctx.attempt();
    });
    f.handlers.add("ok", [&](loom::StepContext& ctx) -> Json {
        f.counter.hit(ctx.step_id());
        return 0;
    });
    loom::RetryPolicy retry;
    retry.max_attempts = 2;
    retry.initial_backoff = 1000ms;
    loom::WorkflowBuilder b("timer", 1);
    if (sleep)
        b.step("a", "sleep").input({{"ms", 1000}});
    else
        b.step("a", "flaky").retry(retry);
    b.step("b", "ok").after("a");
    auto& executor = f.open({b.build()}, {2, nullptr, {}, {}, &clock});
    auto id = executor.start("timer");
    REQUIRE(loom::test::eventually([&] { return executor.get_run(id).step("a")->status == StepStatus::waiting; }));
    const int calls = f.counter.get("a");   // 1 for the retry's failed attempt, 0 for the sleep
    CHECK(executor.pause(id));
    clock.advance(1000ms);   // due now, and held
    CHECK_FALSE(executor.wait_for(id, 100ms));
    CHECK(f.counter.get("a") == calls);
    CHECK(executor.get_run(id).step("a")->status != StepStatus::completed);
    CHECK(f.counter.get("b") == 0);
    CHECK(executor.resume(id));
    auto run = executor.wait(id);   // the clock does not move again: the timer is due already
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("a")->status == StepStatus::completed);
    CHECK(run.step("a")->attempts == (sleep ? 1 : 2));
    CHECK(f.counter.get("a") == calls + (sleep ? 0 : 1));
    CHECK(f.counter.get("b") == 1);
}

TEST_CASE("a paused run can still be cancelled", "[engine][control]") {
    Fixture<Chain> f;
    auto& executor = f.open({Chain::workflow()});
    auto id = executor.start("chain");
    f.gate.wait_for_waiters(1);
    executor.pause(id);
    f.gate.release();
    REQUIRE(loom::test::eventually([&] { return executor.get_run(id).step("a")->status == StepStatus::completed; }));
    CHECK(executor.cancel(id));
    CHECK(executor.wait(id).status == loom::RunStatus::cancelled);
    CHECK(f.counter.get("b") == 0);
}

TEST_CASE("a pause survives a restart and applies to a run no process runs", "[engine][control][sqlite]") {
    Fixture<Chain> f(loom::test::Storage::sqlite);
    const auto id = f.open({Chain::workflow()}).start("chain");
    f.gate.wait_for_waiters(1);
    f.executor().pause(id);
    f.gate.release();
    auto& executor = f.reopen();
    CHECK(f.store().load_run(id)->paused);
    CHECK(executor.resume(id));    // not live here: recorded
    CHECK(executor.pause(id));     // and paused again, still not live
    executor.recover();
    CHECK_FALSE(executor.wait_for(id, 50ms));
    CHECK(f.counter.get("b") == 0);
    executor.resume(id);
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
    CHECK(f.counter.get("a") == 1);
}

TEST_CASE("steps of higher-priority runs are taken first", "[engine][control]") {
    std::mutex mutex;
    std::vector<std::string> order;
    Fixture<> f;
    f.handlers.add("block", [&](loom::StepContext&) -> Json {
        f.gate.pass();
        return 0;
    });
    f.handlers.add("note", [&](loom::StepContext& ctx) -> Json {
        std::lock_guard lock(mutex);
        order.push_back(ctx.input<std::string>("name"));
        return 0;
    });
    auto& executor = f.open({}, {1});   // one thread: a queue forms
    executor.add_workflow(loom::WorkflowBuilder("block", 1).step("b", "block").build());
    executor.add_workflow(loom::WorkflowBuilder("note", 1).step("n", "note").input({{"name", "${input.name}"}}).build());
    auto blocker = executor.start("block");
    f.gate.wait_for_waiters(1);
    std::vector<loom::RunId> ids;
    for (auto [name, priority] : {std::pair{"low", -1}, {"normal", 0}, {"high", 5}, {"normal2", 0}}) {
        loom::StartOptions o;
        o.priority = priority;
        ids.push_back(executor.start("note", {{"name", name}}, o));
    }
    f.gate.release();
    for (const auto& id : ids) executor.wait(id);
    executor.wait(blocker);
    CHECK(order == std::vector<std::string>{"high", "normal", "normal2", "low"});
    CHECK(executor.get_run(ids[2]).priority == 5);
}

TEST_CASE("concurrency limits per handler and per workflow hold within the thread count", "[engine][control]") {
    const bool by_handler = GENERATE(true, false);
    std::atomic<int> inside{0}, most{0};
    Fixture<> f;
    f.handlers.add("slow", [&](loom::StepContext&) -> Json {
        const int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {}
        std::this_thread::sleep_for(5ms);
        --inside;
        return 0;
    });
    loom::ExecutorOptions options;
    options.threads = 4;
    if (by_handler)
        options.max_running_per_handler = {{"slow", 1}};
    else
        options.max_running_per_workflow = {{"fan", 2}};
    auto& executor = f.open({}, options);
    executor.add_workflow(loom::WorkflowBuilder("fan", 1)
                              .step("a", "slow").step("b", "slow").step("c", "slow").step("d", "slow")
                              .build());
    std::vector<loom::RunId> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(executor.start("fan"));
    for (const auto& id : ids) CHECK(executor.wait(id).status == loom::RunStatus::completed);
    CHECK(most == (by_handler ? 1 : 2));
}

TEST_CASE("a concurrency limit of zero is refused", "[engine][control]") {
    Fixture<> f;
    loom::ExecutorOptions options;
    options.max_running_per_handler = {{"x", 0}};
    CHECK_THROWS_WITH(f.open({}, options),
                      "[loom.options.max_running] ExecutorOptions::max_running_per_handler for \"x\" is 0; "
                      "it must be at least 1");
}

TEST_CASE("a run waiting for a concurrency slot can be cancelled at once", "[engine][control]") {
    Fixture<> f;
    f.handlers.add("slow", [&](loom::StepContext&) -> Json {
        f.gate.pass();
        return 0;
    });
    loom::ExecutorOptions options;
    options.threads = 2;
    options.max_running_per_handler = {{"slow", 1}};
    auto& executor = f.open({loom::WorkflowBuilder("w", 1).step("a", "slow").build()}, options);
    auto holder = executor.start("w");
    f.gate.wait_for_waiters(1);
    auto waiting = executor.start("w");   // its step waits for the one slot
    CHECK_FALSE(executor.wait_for(waiting, 30ms));
    CHECK(executor.cancel(waiting));
    auto run = executor.wait(waiting);   // without the slot ever freeing
    CHECK(run.status == loom::RunStatus::cancelled);
    CHECK(run.step("a")->attempts == 0);
    f.gate.release();
    CHECK(executor.wait(holder).status == loom::RunStatus::completed);
}
