// Retries, timeouts and run deadlines: what fails is tried again after a
// backoff that holds no thread and survives a restart; what takes too long is
// given up. Time is a FakeClock wherever the test would otherwise sleep.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::test::eventually;
using loom::test::Gate;

namespace {

loom::RetryPolicy retry(int attempts, std::chrono::milliseconds initial, double multiplier = 2.0,
                        std::chrono::milliseconds max = 60'000ms, double jitter = 0.0) {
    loom::RetryPolicy p;
    p.max_attempts = attempts;
    p.initial_backoff = initial;
    p.multiplier = multiplier;
    p.max_backoff = max;
    p.jitter = jitter;
    return p;
}

/// A handler that fails its first `failures` attempts with `Error`.
template <class Error>
loom::HandlerRegistry::Function flaky(int failures) {
    return [failures](loom::StepContext& ctx) -> Json {
        if (ctx.attempt() <= failures) throw Error("attempt " + std::to_string(ctx.attempt()) + " failed");
        return ctx.attempt();
    };
}

loom::StepStatus status_of(loom::Executor& ex, const loom::RunId& id, const char* step) {
    return ex.get_run(id).step(step)->status;
}

std::vector<std::string> kinds(loom::Executor& ex, const loom::RunId& id, const std::string& step) {
    std::vector<std::string> out;
    for (const auto& e : ex.history(id))
        if (e.step_id == step) out.push_back(e.kind + " " + std::to_string(e.attempt));
    return out;
}

}  // namespace

TEST_CASE("a failing step is retried after its backoff and then completes", "[engine][retry]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<loom::RetryableError>(2));
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(
        loom::WorkflowBuilder("r", 1).step("a", "flaky").retry(retry(3, 1000ms)).build());
    const auto t0 = clock.now();
    auto id = executor.start("r");

    REQUIRE(eventually([&] { return status_of(executor, id, "a") == loom::StepStatus::waiting; }));
    auto step = *executor.get_run(id).step("a");
    CHECK(step.attempts == 1);
    CHECK(step.error == "attempt 1 failed");
    CHECK(step.wake_at == t0 + 1000ms);   // the fake clock did not move

    clock.advance(999ms);
    CHECK_FALSE(executor.wait_for(id, 50ms));   // not due yet
    clock.advance(1ms);
    // The second wait doubles: due at t0 + 1000 + 2000.
    REQUIRE(eventually([&] {
        auto s = *executor.get_run(id).step("a");
        return s.status == loom::StepStatus::waiting && s.attempts == 2;
    }));
    CHECK(executor.get_run(id).step("a")->wake_at == t0 + 3000ms);
    clock.advance(2000ms);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"a", 3}});
    CHECK(run.step("a")->attempts == 3);
    CHECK(run.step("a")->error.empty());
    CHECK(kinds(executor, id, "a") ==
          std::vector<std::string>{"step.started 1", "step.retrying 1", "step.started 2",
                                   "step.retrying 2", "step.started 3", "step.completed 3"});
}

TEST_CASE("FatalError is never retried, other exceptions are until attempts run out", "[engine][retry]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("fatal", flaky<loom::FatalError>(5));
    handlers.add("plain", flaky<std::runtime_error>(5));
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("f", 1).step("a", "fatal").retry(retry(5, 1ms)).build());
    executor.add_workflow(loom::WorkflowBuilder("p", 1).step("a", "plain").retry(retry(3, 1ms)).build());

    auto fatal = executor.wait(executor.start("f"));
    CHECK(fatal.status == loom::RunStatus::failed);
    CHECK(fatal.step("a")->attempts == 1);
    CHECK(fatal.error == "step \"a\" failed: attempt 1 failed");

    auto plain = executor.wait(executor.start("p"));
    CHECK(plain.status == loom::RunStatus::failed);
    CHECK(plain.step("a")->attempts == 3);
    CHECK(plain.step("a")->status == loom::StepStatus::failed);
    CHECK(plain.error == "step \"a\" failed: attempt 3 failed");
}

TEST_CASE("the workflow's default retry applies where a step sets none", "[engine][retry]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<std::runtime_error>(1));
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("d", 1)
                              .default_retry(retry(2, 1ms))
                              .step("a", "flaky")
                              .build());
    executor.add_workflow(loom::WorkflowBuilder("own", 1)
                              .default_retry(retry(2, 1ms))
                              .step("b", "flaky").retry(retry(1, 1ms))
                              .build());
    auto run = executor.wait(executor.start("d"));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("a")->attempts == 2);
    auto own = executor.wait(executor.start("own"));
    CHECK(own.step("b")->status == loom::StepStatus::failed);   // its own policy: one attempt
    CHECK(own.step("b")->attempts == 1);
    CHECK(own.status == loom::RunStatus::failed);
}

TEST_CASE("backoff grows by the multiplier, stops at the maximum and jitters within bounds", "[engine][retry]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<std::runtime_error>(100));
    loom::Executor executor(store, handlers, {1, nullptr, {}, {}, &clock});
    const double jitter = GENERATE(0.0, 0.5);
    executor.add_workflow(loom::WorkflowBuilder("b", 1)
                              .step("a", "flaky").retry(retry(6, 100ms, 3.0, 1000ms, jitter))
                              .build());
    auto id = executor.start("b");
    const std::chrono::milliseconds expected[] = {100ms, 300ms, 900ms, 1000ms, 1000ms};
    for (int attempt = 1; attempt <= 5; ++attempt) {
        loom::StepInfo s;
        REQUIRE(eventually([&] {
            s = *executor.get_run(id).step("a");
            return s.status == loom::StepStatus::waiting && s.attempts == attempt;
        }));
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*s.wake_at - *s.finished_at);
        const auto base = expected[attempt - 1];
        if (jitter == 0.0) {
            CHECK(wait == base);
        } else {
            CHECK(wait.count() >= base.count() / 2);
            CHECK(wait.count() <= base.count() * 3 / 2);
        }
        clock.set(*s.wake_at);
    }
    CHECK(executor.wait(id).step("a")->attempts == 6);
}

TEST_CASE("a step waiting to retry holds no thread", "[engine][retry]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<std::runtime_error>(1));
    handlers.add("ok", [](loom::StepContext&) -> Json { return "done"; });
    loom::Executor executor(store, handlers, {1, nullptr, {}, {}, &clock});   // one thread
    executor.add_workflow(loom::WorkflowBuilder("slow", 1).step("a", "flaky").retry(retry(2, 3600'000ms, 2.0, 3600'000ms)).build());
    executor.add_workflow(loom::WorkflowBuilder("quick", 1).step("a", "ok").build());
    auto slow = executor.start("slow");
    REQUIRE(eventually([&] { return status_of(executor, slow, "a") == loom::StepStatus::waiting; }));
    // With the only thread free, other runs go on while the first waits an hour.
    for (int i = 0; i < 5; ++i) CHECK(executor.wait(executor.start("quick")).status == loom::RunStatus::completed);
    clock.advance(3600'000ms);
    CHECK(executor.wait(slow).status == loom::RunStatus::completed);
}

TEST_CASE("a retry wait survives a restart and fires at its time, not before", "[engine][retry][sqlite]") {
    loom::test::TempDir dir;
    loom::testing::FakeClock clock;
    loom::HandlerRegistry handlers;
    std::atomic<int> calls{0};
    handlers.add("flaky", [&](loom::StepContext& ctx) -> Json {
        ++calls;
        if (ctx.attempt() == 1) throw std::runtime_error("first");
        return ctx.attempt();
    });
    const auto wf = loom::WorkflowBuilder("r", 1).step("a", "flaky").retry(retry(2, 60'000ms)).build();
    loom::RunId id;
    loom::TimePoint due;
    {
        loom::SqliteStore store(dir.file("runs.db"));
        loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
        executor.add_workflow(wf);
        id = executor.start("r");
        REQUIRE(eventually([&] { return status_of(executor, id, "a") == loom::StepStatus::waiting; }));
        due = *executor.get_run(id).step("a")->wake_at;
    }   // the process "stops" while the step waits
    CHECK(calls == 1);
    loom::SqliteStore store(dir.file("runs.db"));
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    CHECK(executor.get_run(id).step("a")->status == loom::StepStatus::waiting);
    CHECK_FALSE(executor.wait_for(id, 50ms));
    CHECK(calls == 1);
    clock.set(due);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("a")->attempts == 2);
    CHECK(calls == 2);
}

TEST_CASE("a timed-out attempt fails, is retried, and its handler sees cancelled()", "[engine][timeout]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    std::atomic<bool> saw_cancel{false};
    std::optional<loom::TimePoint> deadline;
    handlers.add("slow_once", [&](loom::StepContext& ctx) -> Json {
        if (ctx.attempt() == 1) {
            deadline = ctx.deadline();
            while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
            saw_cancel = true;
            return "late";   // discarded
        }
        return "fast";
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(
        loom::WorkflowBuilder("t", 1).step("a", "slow_once").timeout(50ms).retry(retry(2, 1ms)).build());
    auto id = executor.start("t");
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"a", "fast"}});
    CHECK(run.step("a")->attempts == 2);
    CHECK(saw_cancel);
    REQUIRE(deadline);
    auto events = executor.history(id);
    auto retrying = std::find_if(events.begin(), events.end(), [](auto& e) { return e.kind == loom::event::step_retrying; });
    REQUIRE(retrying != events.end());
    CHECK(retrying->detail == "timed out after 50 ms");
}

TEST_CASE("a handler that never returns is given up at its timeout, and its late result is discarded",
          "[engine][timeout]") {
    struct Logs : loom::Observer {
        std::mutex mutex;
        std::vector<std::string> lines;
        void on_log(const loom::LogRecord& r) override {
            std::lock_guard lock(mutex);
            lines.push_back(r.step_id + " " + std::to_string(r.attempt) + " " + r.message);
        }
    } logs;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    Gate gate;
    handlers.add("stuck", [&](loom::StepContext&) -> Json {
        gate.pass();   // ignores cancelled()
        return "too late";
    });
    loom::Executor executor(store, handlers, {2, &logs});
    executor.add_workflow(loom::WorkflowBuilder("t", 1).step("a", "stuck").timeout(30ms).build());
    auto run = executor.wait(executor.start("t"));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"a\" failed: timed out after 30 ms");
    gate.release();
    REQUIRE(eventually([&] {
        std::lock_guard lock(logs.mutex);
        return !logs.lines.empty();
    }));
    CHECK(logs.lines.front() == "a 1 the attempt returned after it was given up; its result is discarded");
    CHECK(executor.get_run(run.id).step("a")->output.is_null());
}

TEST_CASE("ctx.deadline() is the attempt's timeout or the run's deadline, the earlier", "[engine][timeout]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    std::vector<loom::TimePoint> seen;
    handlers.add("look", [&](loom::StepContext& ctx) -> Json {
        if (!ctx.deadline()) return "none";
        seen.push_back(*ctx.deadline());
        return "some";
    });
    loom::Executor executor(store, handlers, {1, nullptr, {}, {}, &clock});
    executor.add_workflow(loom::WorkflowBuilder("d", 1)
                              .deadline(5000ms)
                              .step("a", "look").timeout(1000ms)
                              .step("b", "look").timeout(9000ms).after("a")
                              .step("c", "look").after("b")
                              .build());
    executor.add_workflow(loom::WorkflowBuilder("none", 1).step("a", "look").build());
    const auto t0 = clock.now();
    CHECK(executor.wait(executor.start("d")).status == loom::RunStatus::completed);
    CHECK(seen == std::vector<loom::TimePoint>{t0 + 1000ms, t0 + 5000ms, t0 + 5000ms});
    CHECK(executor.wait(executor.start("none")).output == Json{{"a", "none"}});
}

TEST_CASE("a run past its deadline fails, and steps still running are given up", "[engine][deadline]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    Gate gate;
    handlers.add("stuck", [&](loom::StepContext&) -> Json {
        gate.pass();
        return "late";
    });
    handlers.add("ok", [](loom::StepContext&) -> Json { return 1; });
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(loom::WorkflowBuilder("d", 1)
                              .deadline(60'000ms)
                              .step("fast", "ok")
                              .step("a", "stuck")
                              .step("after", "ok").after("a")
                              .build());
    auto id = executor.start("d");
    gate.wait_for_waiters(1);
    CHECK_FALSE(executor.wait_for(id, 30ms));
    clock.advance(60'000ms);
    auto run = executor.wait(id);
    gate.release();
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "[loom.run.deadline] the run passed its deadline of 60000 ms");
    CHECK(run.step("fast")->status == loom::StepStatus::completed);
    CHECK(run.step("a")->status == loom::StepStatus::failed);
    CHECK(run.step("a")->error == "given up: the run passed its deadline");
    CHECK(run.step("after")->status == loom::StepStatus::cancelled);
}

TEST_CASE("a deadline that passed while no process ran fails the run on recovery", "[engine][deadline][sqlite]") {
    loom::test::TempDir dir;
    loom::testing::FakeClock clock;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<std::runtime_error>(10));
    const auto wf = loom::WorkflowBuilder("d", 1)
                        .deadline(10'000ms)
                        .step("a", "flaky").retry(retry(10, 5000ms))
                        .build();
    loom::RunId id;
    {
        loom::SqliteStore store(dir.file("runs.db"));
        loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
        executor.add_workflow(wf);
        id = executor.start("d");
        REQUIRE(eventually([&] { return status_of(executor, id, "a") == loom::StepStatus::waiting; }));
    }
    clock.advance(20'000ms);
    loom::SqliteStore store(dir.file("runs.db"));
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.recover();
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "[loom.run.deadline] the run passed its deadline of 10000 ms");
    CHECK(run.step("a")->attempts == 1);   // the retry never ran
}

TEST_CASE("cancelling a run whose step waits to retry ends it at once", "[engine][retry][cancel]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("flaky", flaky<std::runtime_error>(10));
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(loom::WorkflowBuilder("c", 1).step("a", "flaky").retry(retry(10, 3600'000ms, 2.0, 3600'000ms)).build());
    auto id = executor.start("c");
    REQUIRE(eventually([&] { return status_of(executor, id, "a") == loom::StepStatus::waiting; }));
    CHECK(executor.cancel(id));
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::cancelled);
    CHECK(run.step("a")->attempts == 1);
    clock.advance(3600'000ms);   // the timer fires into a finished run: nothing happens
    std::this_thread::sleep_for(20ms);
    CHECK(executor.get_run(id).step("a")->attempts == 1);
}
