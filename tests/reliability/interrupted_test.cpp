// Attempts a crash interrupts: a stored `running` attempt counts, so a step
// that kills its process on every attempt ends failed after max_attempts
// (test_crash's poison trial does it with SIGKILL); a running attempt is
// visible to readers of the store while its handler runs; the first attempt
// after recover() is stored before its handler starts; an attempt that
// shutdown cancels is not counted.
//
// A crash is simulated here by writing to the store what a killed process
// leaves: the step (or element) `running` with its attempt counted.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/fixture.hpp"

namespace {

using namespace std::chrono_literals;
using loom::Json;
using loom::StepStatus;
using loom::test::Fixture;

/// What a process killed during attempt `attempt` of `step` leaves stored.
void crashed_during(loom::Store& store, const loom::RunId& id, const std::string& step, int attempt) {
    loom::Batch batch;
    batch.steps.push_back(loom::StepWrite{id, step, StepStatus::running, attempt, nullptr, "",
                                          std::chrono::system_clock::now(), std::nullopt, std::nullopt, false});
    store.commit(batch);
}

/// As crashed_during, for element `index` of for_each step `step`.
void crashed_during_element(loom::Store& store, const loom::RunId& id, const std::string& step,
                            std::uint32_t index, int attempt) {
    loom::Batch batch;
    loom::ItemInfo item;
    item.index = index;
    item.status = StepStatus::running;
    item.attempts = attempt;
    item.started_at = std::chrono::system_clock::now();
    batch.items.push_back(loom::ItemWrite{id, step, item});
    store.commit(batch);
}

/// The handler "step": in the first process it holds until the executor's
/// shutdown cancels it (so the run is left unfinished); afterwards it counts
/// its calls and succeeds. "echo" returns its input.
struct Host : loom::test::Steps {
    std::atomic<int> calls{0};
    std::atomic<int> last_attempt{0};
    std::atomic<bool> first_process{true};
    loom::Store* peek = nullptr;         // set: the handler reads its step from here
    std::optional<loom::StepInfo> seen;  // what it read
    Host() {
        handlers.add("step", [this](loom::StepContext& ctx) -> Json {
            if (first_process) {
                gate.pass();
                while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
                throw loom::RetryableError("cancelled by shutdown");
            }
            ++calls;
            last_attempt = ctx.attempt();
            if (peek) seen = *peek->load_run(ctx.run_id())->step(ctx.step_id());
            return "survived";
        });
        handlers.add("echo", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
    }
};

loom::ExecutorOptions quick_shutdown() {
    loom::ExecutorOptions options{2};
    options.shutdown_grace = 0ms;
    return options;
}

/// Starts `wf` and shuts down while its first step is in flight: the run is
/// left unfinished, that step not counted.
loom::RunId left_unfinished(Fixture<Host>& f, const loom::Workflow& wf, const Json& input = Json::object(),
                            int holders = 1) {
    const auto id = f.open({wf}, quick_shutdown()).start(wf.name(), input);
    f.gate.wait_for_waiters(holders);
    f.gate.release();   // the handlers go on holding until shutdown cancels them
    f.close();
    f.first_process = false;
    return id;
}

loom::Workflow then_report(int max_attempts, loom::OnError on_error) {
    return loom::WorkflowBuilder("w", 1)
        .step("a", "step").retry(loom::test::quick_retry(max_attempts)).on_error(on_error)
        .step("report", "echo").after("a").input({{"status", "${steps.a.status}"}, {"error", "${steps.a.error}"}})
        .build();
}

std::vector<std::string> event_types(loom::Store& store, const loom::RunId& id, const std::string& step) {
    std::vector<std::string> types;
    for (const auto& e : store.load_events(id))
        if (e.step_id == step) types.push_back(e.kind);
    return types;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

const std::string kInterrupted2 =
    "[loom.step.interrupted] attempt 2 was interrupted: its process stopped while it ran";

/// The run of then_report(max_attempts, on_error) as recover() ends it after a
/// process died during attempt `attempt` of "a".
loom::RunInfo recovered_after_crash(Fixture<Host>& f, int max_attempts, loom::OnError on_error, int attempt) {
    const auto id = left_unfinished(f, then_report(max_attempts, on_error));
    crashed_during(f.store(), id, "a", attempt);
    auto& executor = f.open();
    executor.recover();
    return executor.wait(id);
}

}  // namespace

TEST_CASE("an attempt a crash interrupted counts: after max_attempts the step fails without running again",
          "[reliability][interrupted]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto run = recovered_after_crash(f, 2, loom::OnError::fail, 2);   // its second attempt killed the process
    const auto& id = run.id;
    CHECK(f.calls == 0);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("a")->status == StepStatus::failed);
    CHECK(run.step("a")->attempts == 2);
    CHECK(run.step("a")->error == kInterrupted2);
    CHECK(run.error.find("[loom.step.interrupted]") != std::string::npos);
    CHECK(has(event_types(f.store(), id, "a"), loom::event::step_failed));
}

TEST_CASE("an interrupted attempt with attempts left is retried as the next attempt", "[reliability][interrupted]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto run = recovered_after_crash(f, 3, loom::OnError::fail, 1);
    const auto& id = run.id;
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(f.calls == 1);
    CHECK(f.last_attempt == 2);
    CHECK(run.step("a")->attempts == 2);
    CHECK(has(event_types(f.store(), id, "a"), loom::event::step_interrupted));
}

TEST_CASE("a step that failed by interruption follows its on_error", "[reliability][interrupted]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto run = recovered_after_crash(f, 2, loom::OnError::proceed, 2);
    CHECK(f.calls == 0);
    CHECK(run.status == loom::RunStatus::completed);   // "continue": dependents run
    CHECK(run.step("report")->output == Json{{"status", "failed"}, {"error", kInterrupted2}});
}

TEST_CASE("a for_each element a crash interrupted counts its attempt", "[reliability][interrupted][for_each]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto wf = loom::WorkflowBuilder("fan", 1)
                        .step("each", "step").for_each("${input.items}").max_parallel(3)
                        .retry(loom::test::quick_retry(2))
                        .build();
    const auto id = left_unfinished(f, wf, {{"items", {1, 2, 3}}}, 2);
    crashed_during_element(f.store(), id, "each", 1, 2);
    crashed_during_element(f.store(), id, "each", 2, 1);
    auto& executor = f.open();
    executor.recover();
    const auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    auto element = [&](std::uint32_t index) {
        for (const auto& item : run.step("each")->items)
            if (item.index == index) return item;
        FAIL("element " << index << " is not stored");
        return loom::ItemInfo{};
    };
    CHECK(element(1).status == StepStatus::failed);
    CHECK(element(1).attempts == 2);
    CHECK(element(1).error == kInterrupted2);
    // Element 2 had an attempt left, but its step failed first: it never ran
    // again, and no element of a final run looks as if it may still start.
    CHECK(element(2).status == StepStatus::cancelled);
    CHECK(element(2).attempts == 1);
    CHECK(has(event_types(f.store(), id, "each"), loom::event::element_cancelled));
    CHECK(run.step("each")->error.find("[loom.step.interrupted]") != std::string::npos);
    CHECK(has(event_types(f.store(), id, "each"), loom::event::element_interrupted));
}

TEST_CASE("a running attempt is visible to readers of the store while its handler runs",
          "[reliability][interrupted][sqlite]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto id = f.open({then_report(1, loom::OnError::fail)}, quick_shutdown()).start("w");
    f.gate.wait_for_waiters(1);
    f.gate.release();
    loom::SqliteStore reader(f.db());   // another connection, as another process's
    REQUIRE(loom::test::eventually([&] { return reader.load_run(id)->step("a")->status == StepStatus::running; },
                                   5s));
    const auto a = *reader.load_run(id)->step("a");
    CHECK(a.attempts == 1);
    CHECK(a.started_at.has_value());
}

TEST_CASE("a running attempt's start is stored within 10 ms of the executor's clock",
          "[reliability][interrupted][sqlite]") {
    // The bound the docs state: on a clock that only moves when told, no
    // other commit can carry the start, so only the flush due 10 ms after it
    // began can have stored it.
    loom::testing::FakeClock clock;   // outlives the executor
    Fixture<Host> f(loom::test::Storage::sqlite);
    auto options = quick_shutdown();
    options.clock = &clock;
    const auto id = f.open({then_report(1, loom::OnError::fail)}, options).start("w");
    f.gate.wait_for_waiters(1);
    f.gate.release();
    clock.advance(10ms);
    loom::SqliteStore reader(f.db());
    REQUIRE(loom::test::eventually([&] { return reader.load_run(id)->step("a")->status == StepStatus::running; },
                                   5s));
    CHECK(reader.load_run(id)->step("a")->started_at == loom::testing::FakeClock::kDefaultStart);
}

TEST_CASE("the first attempt after recover() is stored before its handler runs", "[reliability][interrupted]") {
    // Its start may be what killed the last process: it is committed first.
    // On a clock that never moves no lazy write of a start falls due, so
    // only that can have stored it.
    loom::testing::FakeClock clock;   // outlives the executor
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto id = left_unfinished(f, then_report(3, loom::OnError::fail));
    loom::ExecutorOptions options{2};
    options.clock = &clock;
    f.peek = &f.store();
    auto& executor = f.open({}, options);
    executor.recover();
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
    REQUIRE(f.seen);
    CHECK(f.seen->status == StepStatus::running);
    CHECK(f.seen->attempts == f.last_attempt);
    CHECK(f.seen->attempts - f.seen->attempt_base == 1);   // the attempt shutdown cancelled does not count
    CHECK(f.seen->started_at.has_value());
}

TEST_CASE("an attempt that shutdown cancels is not counted", "[reliability][interrupted][sqlite]") {
    Fixture<Host> f(loom::test::Storage::sqlite);
    const auto id = f.open({then_report(1, loom::OnError::fail)}, quick_shutdown()).start("w");
    f.gate.wait_for_waiters(1);
    f.gate.release();
    // Its start reached the store; shutdown must take it back.
    REQUIRE(loom::test::eventually([&] { return f.store().load_run(id)->step("a")->attempts == 1; }, 5s));
    f.close();
    f.first_process = false;
    const auto a = *f.store().load_run(id)->step("a");
    CHECK(a.status == StepStatus::ready);
    CHECK(a.attempts == 1);       // its number stays taken
    CHECK(a.attempt_base == 1);   // but it does not count
    CHECK(has(event_types(f.store(), id, "a"), loom::event::step_stopped));
    auto& executor = f.reopen();
    executor.recover();
    const auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);   // max_attempts 1 was not used up
    CHECK(f.last_attempt == 2);
}
