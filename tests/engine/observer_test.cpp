// Observers: every committed change of a step or of a for_each element is
// told (on_step_changed), once durable, with its times; a final run has no
// step left that looks as if it may still start. LogObserver prints them.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::RunStatus;
using loom::StepStatus;
using loom::test::Fixture;
using loom::test::Storage;

namespace {

/// A StepEvent that outlives the call.
struct Seen {
    std::string step;
    std::optional<std::uint32_t> item;
    StepStatus status;
    int attempt;
    Json output;
    std::string error;
    std::optional<loom::TimePoint> started_at, finished_at, wake_at;
    std::string kind, detail;
};

/// Keeps every step change, and what on_step_finished() got.
struct Recorder : loom::Observer {
    std::mutex mutex;
    std::vector<Seen> changes;           // guarded by mutex
    std::vector<std::string> finished;   // guarded by mutex
    void on_step_changed(const loom::StepEvent& e) override {
        {
            std::lock_guard lock(mutex);
            changes.push_back(Seen{e.step_id, e.item, e.status, e.attempt, e.output ? *e.output : Json(),
                                   e.error, e.started_at, e.finished_at, e.wake_at, std::string(e.kind),
                                   e.detail});
        }
        Observer::on_step_changed(e);   // on_step_finished for the ones it covers
    }
    void on_step_finished(const loom::StepEvent& e) override {
        std::lock_guard lock(mutex);
        finished.push_back(e.step_id + " " + std::string(loom::to_string(e.status)));
    }
    /// The changes of `step` (or of its element `item`), in the order told.
    std::vector<Seen> of(const std::string& step, std::optional<std::uint32_t> item = std::nullopt) {
        std::lock_guard lock(mutex);
        std::vector<Seen> out;
        for (const auto& c : changes)
            if (c.step == step && c.item == item) out.push_back(c);
        return out;
    }
    std::vector<std::string> statuses(const std::string& step, std::optional<std::uint32_t> item = std::nullopt) {
        std::vector<std::string> out;
        for (const auto& c : of(step, item)) out.push_back(std::string(loom::to_string(c.status)));
        return out;
    }
};

struct Steps : loom::test::Steps {
    Steps() {
        handlers.add("echo", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
        // Element 1 (or a plain step) fails its first attempt.
        handlers.add("flaky", [](loom::StepContext& ctx) -> Json {
            if (ctx.attempt() == 1 && ctx.item_index().value_or(1) == 1) throw std::runtime_error("flaky");
            return ctx.item_index() ? Json(*ctx.item_index() * 10) : Json("ok");
        });
        handlers.add("boom", [](loom::StepContext&) -> Json { throw loom::FatalError("boom"); });
        handlers.add("never", [](loom::StepContext&) -> Json { throw std::runtime_error("again"); });
        handlers.add("gated", [this](loom::StepContext&) -> Json {
            gate.pass();
            throw loom::FatalError("late failure");
        });
        handlers.add("undo", [](loom::StepContext&) -> Json { return nullptr; });
    }
};

std::vector<std::string> kinds(loom::Executor& executor, const loom::RunId& id, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& e : executor.history(id))
        if (e.kind.rfind(prefix, 0) == 0) out.push_back(e.kind + " " + e.step_id + " " + e.detail);
    return out;
}

}  // namespace

TEST_CASE("observers hear each element of a for_each, its retries and the step's completion", "[engine][observer]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("fan", 1)
                                 .step("each", "flaky").for_each("${input.list}").max_parallel(1)
                                 .retry(loom::test::quick_retry(2))
                                 .build()},
                            {2, &observer});
    auto id = executor.start("fan", {{"list", {"a", "b", "c"}}});
    REQUIRE(executor.wait(id).status == RunStatus::completed);

    for (std::uint32_t i : {0u, 2u}) {
        auto seen = observer.of("each", i);
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].status == StepStatus::completed);
        CHECK(seen[0].kind == loom::event::element_completed);
        CHECK(seen[0].attempt == 1);
        CHECK(seen[0].output == Json(i * 10));
    }
    auto one = observer.of("each", 1);
    REQUIRE(one.size() == 2);
    CHECK(one[0].status == StepStatus::waiting);
    CHECK(one[0].kind == loom::event::element_retrying);
    CHECK(one[0].attempt == 1);
    CHECK(one[0].error == "flaky");
    CHECK(one[0].detail == "element 1: flaky");
    REQUIRE(one[0].started_at);
    REQUIRE(one[0].finished_at);
    CHECK(*one[0].started_at <= *one[0].finished_at);
    CHECK(one[0].wake_at == *one[0].finished_at + 1ms);   // quick_retry: 1 ms, no jitter
    CHECK(one[1].status == StepStatus::completed);
    CHECK(one[1].attempt == 2);
    CHECK(one[1].output == 10);
    REQUIRE(one[1].started_at);
    CHECK(*one[1].started_at >= *one[0].wake_at);
    CHECK(one[1].finished_at >= one[1].started_at);

    auto step = observer.of("each");
    REQUIRE(step.size() == 1);
    CHECK(step[0].status == StepStatus::completed);
    CHECK(step[0].kind == loom::event::step_completed);
    CHECK(step[0].output == Json{0, 10, 20});
    CHECK(step[0].started_at <= one[0].started_at);
    CHECK(step[0].finished_at >= one[1].finished_at);
    // on_step_finished, as before on_step_changed: the step itself only.
    std::lock_guard lock(observer.mutex);
    CHECK(observer.finished == std::vector<std::string>{"each completed"});
}

TEST_CASE("element retries and outcomes are in the run's history", "[engine][observer][history]") {
    Fixture<Steps> f(Storage::sqlite);
    auto& executor = f.open({loom::WorkflowBuilder("fan", 1)
                                 .step("each", "flaky").for_each("${input.list}").max_parallel(1)
                                 .retry(loom::test::quick_retry(2))
                                 .build()});
    auto id = executor.start("fan", {{"list", {"a", "b"}}});
    REQUIRE(executor.wait(id).status == RunStatus::completed);
    CHECK(kinds(executor, id, "element.") == std::vector<std::string>{
                                                 "element.completed each element 0",
                                                 "element.retrying each element 1: flaky",
                                                 "element.completed each element 1"});
    std::vector<int> attempts;
    for (const auto& e : executor.history(id))
        if (e.kind.rfind("element.", 0) == 0) attempts.push_back(e.attempt);
    CHECK(attempts == std::vector<int>{1, 1, 2});
}

TEST_CASE("an element that fails for good is in the history and told, and so is its step",
          "[engine][observer][history]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("fan", 1)
                                 .step("each", "boom").for_each("${input.list}").max_parallel(1)
                                 .build()},
                            {2, &observer});
    auto id = executor.start("fan", {{"list", {"a", "b"}}});
    REQUIRE(executor.wait(id).status == RunStatus::failed);
    CHECK(kinds(executor, id, "element.") == std::vector<std::string>{"element.failed each element 0: boom"});
    CHECK(observer.statuses("each", 0) == std::vector<std::string>{"failed"});
    CHECK(observer.statuses("each") == std::vector<std::string>{"failed"});
    CHECK(observer.of("each")[0].error == "element 0 failed: boom");
}

TEST_CASE("observers hear of a step skipped by its condition", "[engine][observer]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("maybe", "echo").when("${input.go} == true")
                                 .build()},
                            {2, &observer});
    REQUIRE(executor.wait(executor.start("w", {{"go", false}})).status == RunStatus::completed);
    auto seen = observer.of("maybe");
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].status == StepStatus::skipped);
    CHECK(seen[0].kind == loom::event::step_skipped);
    CHECK(seen[0].detail == "condition \"${input.go} == true\" is false");
    CHECK(seen[0].finished_at);
    std::lock_guard lock(observer.mutex);
    CHECK(observer.finished.empty());
}

TEST_CASE("observers hear of a retry that waits, with its wake time, then of the attempt after it",
          "[engine][observer]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("s", "flaky").retry(loom::test::quick_retry(2))
                                 .build()},
                            {2, &observer});
    REQUIRE(executor.wait(executor.start("w")).status == RunStatus::completed);
    auto seen = observer.of("s");
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].status == StepStatus::waiting);
    CHECK(seen[0].kind == loom::event::step_retrying);
    CHECK(seen[0].attempt == 1);
    CHECK(seen[0].error == "flaky");
    REQUIRE(seen[0].finished_at);
    CHECK(seen[0].started_at <= seen[0].finished_at);
    CHECK(seen[0].wake_at == *seen[0].finished_at + 1ms);
    CHECK(seen[1].status == StepStatus::completed);
    CHECK(seen[1].attempt == 2);
    CHECK(seen[1].output == "ok");
    CHECK(seen[1].started_at >= seen[0].wake_at);
    CHECK_FALSE(seen[1].wake_at);
    std::lock_guard lock(observer.mutex);
    CHECK(observer.finished == std::vector<std::string>{"s completed"});
}

TEST_CASE("observers hear a compensation: compensating, then compensated", "[engine][observer][saga]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("trip", 1)
                                 .step("flight", "echo").compensate("undo")
                                 .step("charge", "boom").after("flight").on_error(loom::OnError::compensate)
                                 .build()},
                            {2, &observer});
    REQUIRE(executor.wait(executor.start("trip")).status == RunStatus::failed);
    CHECK(observer.statuses("flight") == std::vector<std::string>{"completed", "compensating", "compensated"});
    auto seen = observer.of("flight");
    CHECK(seen[1].kind == loom::event::step_compensating);
    CHECK(seen[2].kind == loom::event::step_compensated);
    CHECK(observer.statuses("charge") == std::vector<std::string>{"failed"});
}

TEST_CASE("a run that fails early cancels the steps it never finished, durably and told",
          "[engine][observer][sqlite]") {
    Recorder observer;
    Fixture<Steps> f(Storage::sqlite);
    loom::RetryPolicy slow;
    slow.max_attempts = 3;
    slow.initial_backoff = 1h;
    slow.max_backoff = 1h;
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("retrying", "never").retry(slow)
                                 .step("bad", "gated")
                                 .step("after", "echo").after("bad")
                                 .step("last", "echo").after("after")
                                 .build()},
                            {2, &observer});
    auto id = executor.start("w");
    // "bad" fails once "retrying" waits for its retry, an hour away.
    f.gate.wait_for_waiters(1);
    REQUIRE(loom::test::eventually(
        [&] { return executor.get_run(id).step("retrying")->status == StepStatus::waiting; }));
    f.gate.release();
    auto run = executor.wait(id);
    REQUIRE(run.status == RunStatus::failed);
    auto check = [](const loom::RunInfo& r) {
        CHECK(r.step("bad")->status == StepStatus::failed);
        CHECK(r.step("retrying")->status == StepStatus::cancelled);
        CHECK(r.step("retrying")->attempts == 1);
        CHECK_FALSE(r.step("retrying")->wake_at);
        for (const char* never : {"after", "last"}) {
            CHECK(r.step(never)->status == StepStatus::cancelled);
            CHECK(r.step(never)->attempts == 0);
        }
    };
    check(run);
    check(executor.get_run(id));
    for (const char* step : {"retrying", "after", "last"}) {
        auto seen = observer.of(step);
        REQUIRE_FALSE(seen.empty());
        CHECK(seen.back().status == StepStatus::cancelled);
        CHECK(seen.back().kind == loom::event::step_cancelled);
        CHECK(seen.back().detail == "the run failed");
    }
    CHECK(kinds(executor, id, loom::event::step_cancelled).size() == 3);
    f.close();   // a restart reads the same
    auto stored = f.store().load_run(id);
    REQUIRE(stored);
    CHECK(stored->status == RunStatus::failed);
    check(*stored);
}

TEST_CASE("cancelling a run cancels its suspended and pending steps", "[engine][observer]") {
    Recorder observer;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("approval", "wait").input({{"signal", "approved"}})
                                 .step("ship", "echo").after("approval")
                                 .build()},
                            {2, &observer});
    auto id = executor.start("w");
    REQUIRE(loom::test::eventually(
        [&] { return executor.get_run(id).step("approval")->status == StepStatus::suspended; }));
    CHECK(executor.cancel(id));
    auto run = executor.wait(id);
    CHECK(run.status == RunStatus::cancelled);
    CHECK(run.step("approval")->status == StepStatus::cancelled);
    CHECK(run.step("approval")->finished_at);
    CHECK(run.step("ship")->status == StepStatus::cancelled);
    CHECK(observer.statuses("approval") == std::vector<std::string>{"suspended", "cancelled"});
    CHECK(observer.of("approval").back().detail == "the run was cancelled");
    CHECK(observer.statuses("ship") == std::vector<std::string>{"cancelled"});
}

TEST_CASE("LogObserver writes one line per change, naming the element", "[engine][observer]") {
    std::ostringstream out;
    loom::LogObserver log(out);
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("fan", 1)
                                 .step("each", "flaky").for_each("${input.list}").max_parallel(1)
                                 .retry(loom::test::quick_retry(2))
                                 .step("maybe", "echo").after("each").when("${input.go} == true")
                                 .build()},
                            {1, &log});
    auto id = executor.start("fan", {{"list", {"a", "b"}}, {"go", false}});
    REQUIRE(executor.wait(id).status == RunStatus::completed);
    std::vector<std::string> lines;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    const std::string run = "run " + id;
    REQUIRE(lines.size() == 7);
    CHECK(lines[0] == run + " started (fan)");
    CHECK(lines[1] == run + " step each element 0 completed (attempt 1): 0");
    CHECK_THAT(lines[2], Catch::StartsWith(run + " step each element 1 waiting (attempt 1) until 20") &&
                             Catch::EndsWith("Z: flaky"));
    CHECK(lines[3] == run + " step each element 1 completed (attempt 2): 10");
    CHECK(lines[4] == run + " step each completed (attempt 3): [0,10]");
    CHECK(lines[5] == run + " step maybe skipped (attempt 0): condition \"${input.go} == true\" is false");
    CHECK(lines[6] == run + " completed");
}
