// Steps that wait for the outside world: the "wait" step and signals, and
// handlers that suspend until completed by token. Both survive restarts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::StepStatus;
using loom::test::eventually;

namespace {

loom::Workflow approval(Json wait_input = {{"signal", "approval"}}) {
    return loom::WorkflowBuilder("approval", 1)
        .step("prepare", "echo")
        .step("approve", "wait").input(std::move(wait_input)).after("prepare")
        .step("ship", "echo").input({{"by", "${steps.approve.output.by}"}}).after("approve")
        .build();
}

struct Fixture {
    loom::HandlerRegistry handlers;
    loom::test::Gate gate;
    bool hold = false;
    std::mutex mutex;
    std::vector<std::string> tokens;
    Fixture() {
        handlers.add("echo", [this](loom::StepContext& ctx) -> Json {
            if (hold && ctx.step_id() == "prepare") gate.pass();
            return ctx.input();
        });
        handlers.add("outside", [this](loom::StepContext& ctx) -> Json {
            std::lock_guard lock(mutex);
            tokens.push_back(ctx.completion_token());
            ctx.suspend();
            return "ignored";
        });
    }
    std::string token(std::size_t i) {
        std::lock_guard lock(mutex);
        return tokens.at(i);
    }
    std::size_t token_count() {
        std::lock_guard lock(mutex);
        return tokens.size();
    }
};

StepStatus status_of(loom::Executor& ex, const loom::RunId& id, const char* step) {
    return ex.get_run(id).step(step)->status;
}

/// A wait step for signal "go" beside a handler that suspends; "end" takes both outputs.
loom::Workflow both() {
    return loom::WorkflowBuilder("both", 1)
        .step("approve", "wait").input({{"signal", "go"}})
        .step("job", "outside")
        .step("end", "echo").after({"approve", "job"})
        .build();
}

/// Starts a run of both() and returns once both its steps are suspended.
loom::RunId start_suspended(loom::Executor& executor) {
    const auto id = executor.start("both");
    REQUIRE(eventually([&] {
        auto run = executor.get_run(id);
        return run.step("approve")->status == StepStatus::suspended &&
               run.step("job")->status == StepStatus::suspended;
    }));
    return id;
}

}  // namespace

TEST_CASE("a wait step completes with the signal's payload", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(approval());
    auto id = executor.start("approval");
    REQUIRE(eventually([&] { return status_of(executor, id, "approve") == StepStatus::suspended; }));
    CHECK(status_of(executor, id, "approve") == StepStatus::suspended);
    CHECK(executor.signal(id, "approval", {{"by", "ann"}}));
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("approve")->output == Json{{"by", "ann"}});
    CHECK(run.output == Json{{"ship", {{"by", "ann"}}}});
    CHECK_FALSE(executor.signal(id, "approval", {{"by", "bob"}}));   // the run is over
}

TEST_CASE("a signal sent before the wait step is reached is kept", "[engine][signals]") {
    Fixture f;
    f.hold = true;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(approval());
    auto id = executor.start("approval");
    f.gate.wait_for_waiters(1);
    CHECK(executor.signal(id, "approval", {{"by", "early"}}));
    CHECK(executor.signal(id, "approval", {{"by", "late"}}));   // the first counts
    f.gate.release();
    auto run = executor.wait(id);
    CHECK(run.step("approve")->output == Json{{"by", "early"}});
}

TEST_CASE("a wait step with a timeout fails when no signal comes", "[engine][signals]") {
    Fixture f;
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(approval({{"signal", "approval"}, {"timeout_ms", 60'000}}));
    auto id = executor.start("approval");
    REQUIRE(eventually([&] { return status_of(executor, id, "approve") == StepStatus::suspended; }));
    CHECK(executor.get_run(id).step("approve")->wake_at == clock.now() + 60'000ms);
    clock.advance(60'000ms);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("approve")->error == "[loom.wait.timeout] no signal \"approval\" within 60000 ms");
}

TEST_CASE("bad signals and bad wait inputs are refused clearly", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(approval({{"signal", 5}}));
    CHECK_THROWS_WITH(executor.signal("nope", "x"), "[loom.run.unknown] run nope does not exist");
    auto id = executor.start("approval");
    CHECK_THROWS_WITH(executor.signal(id, ""), "[loom.signal.name] signal name is empty");
    auto run = executor.wait(id);
    CHECK(run.step("approve")->error ==
          "[loom.wait.input] wait step input must be an object with a non-empty string \"signal\", not "
          "{\"signal\":5}");
}

TEST_CASE("a suspended step is finished by its completion token", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    loom::RetryPolicy twice;
    twice.max_attempts = 2;
    twice.initial_backoff = 1ms;
    executor.add_workflow(loom::WorkflowBuilder("ext", 1)
                              .step("job", "outside").retry(twice)
                              .step("after", "echo").input({{"got", "${steps.job.output}"}}).after("job")
                              .build());
    auto id = executor.start("ext");
    REQUIRE(eventually([&] { return status_of(executor, id, "job") == StepStatus::suspended; }));
    CHECK(f.token(0) == id + "/job/1");
    executor.fail(f.token(0), "the printer is on fire");   // retried: attempt 2 suspends again
    REQUIRE(eventually([&] { return f.token_count() == 2 && status_of(executor, id, "job") == StepStatus::suspended; }));
    CHECK_THROWS_WITH(executor.complete(f.token(0), 1),
                      "[loom.token.stale] completion token \"" + id +
                          "/job/1\": step \"job\" of run " + id +
                          " is not suspended in attempt 1 (it finished, timed out, or the run ended)");
    executor.complete(f.token(1), {{"pages", 3}});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("job")->attempts == 2);
    CHECK(run.output == Json{{"after", {{"got", {{"pages", 3}}}}}});
    CHECK_THROWS_AS(executor.complete(f.token(1), 1), loom::Conflict);
    CHECK_THROWS_WITH(executor.complete("garbage", 1),
                      "[loom.token.malformed] completion token \"garbage\" is not \"<run>/<step>/<attempt>\"");
    CHECK_THROWS_AS(executor.complete(id + "/nope/1", 1), loom::Conflict);   // the run is over
}

TEST_CASE("a suspended step times out by its step timeout", "[engine][signals]") {
    Fixture f;
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(loom::WorkflowBuilder("ext", 1).step("job", "outside").timeout(5000ms).build());
    auto id = executor.start("ext");
    REQUIRE(eventually([&] { return status_of(executor, id, "job") == StepStatus::suspended; }));
    clock.advance(5000ms);
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("job")->error == "timed out after 5000 ms");
    CHECK_THROWS_AS(executor.complete(f.token(0), 1), loom::Conflict);
}

// fail() by token makes the step wait for its retry's backoff; the timer of
// its step timeout, armed while it was suspended, must not start the retry
// early (it did: same attempt number, status waiting).
TEST_CASE("a step failed by its token is retried after its backoff and not at its old timeout",
          "[engine][signals][retry]") {
    Fixture f;
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2, nullptr, {}, {}, &clock});
    loom::RetryPolicy retry;
    retry.max_attempts = 2;
    retry.initial_backoff = 10'000ms;
    retry.jitter = 0.0;
    executor.add_workflow(
        loom::WorkflowBuilder("ext", 1).step("job", "outside").timeout(100ms).retry(retry).build());
    auto id = executor.start("ext");
    REQUIRE(eventually([&] { return status_of(executor, id, "job") == StepStatus::suspended; }));
    executor.fail(f.token(0), "printer offline");
    REQUIRE(eventually([&] { return status_of(executor, id, "job") == StepStatus::waiting; }));
    clock.advance(200ms);   // past the first attempt's timeout
    std::this_thread::sleep_for(50ms);
    CHECK(status_of(executor, id, "job") == StepStatus::waiting);
    CHECK(f.token_count() == 1);
    clock.advance(10'000ms);   // the backoff is over
    REQUIRE(eventually([&] { return f.token_count() == 2; }));
    executor.complete(f.token(1), "printed");
    const auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("job")->attempts == 2);
}

// The documented pattern hands the token to an outside system before
// suspending; one that answers at once calls back before the handler returns.
TEST_CASE("a completion that comes before its handler suspended takes effect when it does",
          "[engine][signals]") {
    loom::HandlerRegistry handlers;
    loom::Executor* executor = nullptr;
    std::atomic<int> calls{0};
    handlers.add("quick", [&](loom::StepContext& ctx) -> Json {
        const auto attempt = ++calls;
        const auto token = ctx.completion_token();
        // The callback, on another thread, done before the handler returns.
        std::thread([&, token, attempt] {
            if (attempt == 1)
                executor->fail(token, "busy");
            else
                executor->complete(token, {{"pages", attempt}});
        }).join();
        ctx.suspend();
        return nullptr;
    });
    loom::MemoryStore store;
    loom::Executor running(store, handlers, {2});
    executor = &running;
    loom::RetryPolicy retry;
    retry.max_attempts = 2;
    retry.initial_backoff = 1ms;
    running.add_workflow(loom::WorkflowBuilder("ext", 1).step("job", "quick").retry(retry).build());
    const auto run = running.wait(running.start("ext"));
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("job")->attempts == 2);   // the early fail() counted too
    CHECK(run.step("job")->output == Json{{"pages", 2}});
}

// A completion whose output is null counts as the first request, also when
// read back from the history (recovery, or the poll for other processes).
TEST_CASE("complete() with a null output recorded for a run not live wins over a later fail()",
          "[engine][signals][recovery]") {
    Fixture f;
    loom::MemoryStore store;
    loom::RunId id;
    {
        loom::Executor first(store, f.handlers, {2});
        first.add_workflow(loom::WorkflowBuilder("ext", 1).step("job", "outside").build());
        id = first.start("ext");
        REQUIRE(eventually([&] { return status_of(first, id, "job") == StepStatus::suspended; }));
    }
    loom::Executor executor(store, f.handlers, {2});
    executor.complete(f.token(0), nullptr);
    executor.fail(f.token(0), "too late");   // recorded; the first request counts
    executor.recover();
    const auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("job")->output.is_null());
}

TEST_CASE("signals and completions sent while no process runs the run are applied on recovery",
          "[engine][signals][sqlite]") {
    loom::test::TempDir dir;
    Fixture f;
    loom::RunId id;
    {
        loom::SqliteStore store(dir.file("runs.db"));
        loom::Executor executor(store, f.handlers, {2});
        executor.add_workflow(both());
        id = start_suspended(executor);
    }
    loom::SqliteStore store(dir.file("runs.db"));
    loom::Executor executor(store, f.handlers, {2});
    // Not live here yet: recorded in the run's history, applied by recover().
    CHECK(executor.signal(id, "go", "yes"));
    executor.complete(f.token(0), "done");
    CHECK_THROWS_AS(executor.complete(id + "/job/7", 1), loom::Conflict);
    CHECK(executor.get_run(id).step("approve")->status == StepStatus::suspended);
    executor.recover();
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"end", {{"approve", "yes"}, {"job", "done"}}}});
    CHECK(f.token_count() == 1);   // the suspended handler did not run again
}

// signal() and complete() from one thread while the run ends on another: each
// call either applies, durably, or reports that it came too late as documented
// (signal(): false; complete(): Conflict "[loom.token.stale]"); nothing hangs,
// and the history agrees with what the callers were told.
TEST_CASE("signals sent while the run ends apply or return false", "[engine][signals]") {
    const bool by_cancel = GENERATE(true, false);   // or it completes: its wait step gets its signal
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("approval", 1)   // approval(), which also takes "ping"
                              .step("prepare", "echo")
                              .step("approve", "wait").input({{"signal", "approval"}}).after("prepare")
                              .step("ping", "wait").input({{"signal", "ping"}})
                              .step("ship", "echo").input({{"by", "${steps.approve.output.by}"}}).after("approve")
                              .build());
    for (int round = 0; round < 20; ++round) {
        INFO("round " << round << (by_cancel ? ", cancelled" : ", completed"));
        const auto id = executor.start("approval");
        std::atomic<int> accepted{0};
        std::vector<bool> results;   // of every signal() call, in order
        std::string error;
        std::thread sender([&] {
            const auto until = std::chrono::steady_clock::now() + 2s;
            try {   // until three calls in a row found the run over
                for (int refused = 0; refused < 3 && std::chrono::steady_clock::now() < until;) {
                    results.push_back(executor.signal(id, "ping", int(results.size())));
                    if (results.back())
                        ++accepted;
                    else
                        ++refused;
                }
            } catch (const std::exception& e) {
                error = e.what();
            }
        });
        // End the run after a few signals, so that the later ones race with its end.
        REQUIRE(eventually([&] { return accepted > round % 5; }));
        if (by_cancel)
            CHECK(executor.cancel(id));
        else
            CHECK(executor.signal(id, "approval", {{"by", "ann"}}));
        const auto run = executor.wait(id);
        sender.join();
        CHECK(error.empty());
        CHECK(run.status == (by_cancel ? loom::RunStatus::cancelled : loom::RunStatus::completed));
        if (!by_cancel) CHECK(run.step("approve")->output == Json{{"by", "ann"}});
        // Accepted ones first; once one is refused, the run is over for good.
        CHECK(std::is_partitioned(results.begin(), results.end(), [](bool r) { return r; }));
        REQUIRE(results.size() >= 3);
        CHECK_FALSE(results.back());
        // Exactly the accepted pings are in the history, all before the run's end.
        int pings = 0;
        std::size_t last_ping = 0, end = 0;
        const auto history = executor.history(id);
        for (std::size_t i = 0; i < history.size(); ++i) {
            const auto& e = history[i];
            if (e.kind == "signal" && Json::parse(e.detail).at("name") == "ping") {
                ++pings;
                last_ping = i;
            }
            if (e.kind == loom::event::run_cancelled || e.kind == loom::event::run_completed) end = i;
        }
        CHECK(pings == accepted);
        CHECK(last_ping < end);
    }
}

TEST_CASE("a completion racing with the run's cancellation applies or is stale", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("ext", 1).step("job", "outside").build());
    int applied_rounds = 0;
    for (int round = 0; round < 40; ++round) {
        INFO("round " << round);
        const auto id = executor.start("ext");
        REQUIRE(eventually([&] { return f.token_count() == std::size_t(round) + 1; }));
        REQUIRE(eventually([&] { return status_of(executor, id, "job") == StepStatus::suspended; }));
        // Both calls start together; one of them a few microseconds later, so
        // that some rounds cancel first and some complete first.
        auto spin = [](int us) {
            const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
            while (std::chrono::steady_clock::now() < until) {}
        };
        std::atomic<bool> ready{false}, go{false};
        bool applied = false;
        std::string refusal;
        std::thread completer([&] {
            ready = true;
            while (!go) {}
            spin(round % 2 ? 0 : round);
            try {
                executor.complete(f.token(std::size_t(round)), round);
                applied = true;
            } catch (const std::exception& e) {
                refusal = e.what();
            }
        });
        while (!ready) {}
        go = true;
        spin(round % 2 ? round : 0);
        const bool cancelled = executor.cancel(id);
        completer.join();
        const auto run = executor.wait(id);
        applied_rounds += applied;
        if (applied) {
            CHECK(run.step("job")->status == StepStatus::completed);
            CHECK(run.step("job")->output == round);
        } else {
            CHECK_THAT(refusal, Catch::StartsWith("[loom.token.stale] "));
            CHECK(run.step("job")->status != StepStatus::completed);
        }
        // cancel() refuses only a run that is over: the completion finished it first.
        CHECK(run.status == (cancelled ? loom::RunStatus::cancelled : loom::RunStatus::completed));
        if (!cancelled) CHECK(applied);
    }
    WARN("completions applied in " << applied_rounds << " of 40 rounds, stale in the others");
}

// recover() reads a run, then makes it live; a host thread that calls in
// between finds it not live and only records its call. The store below makes
// the call in that window (once recover() has read the run's history), and
// the call must still be applied.
TEST_CASE("a signal or a cancel or a pause sent while recover() resumes the run is not lost",
          "[engine][signals][recovery]") {
    struct Interleaving : loom::StoreWrapper {
        using StoreWrapper::StoreWrapper;
        std::function<void()> call;   // made once, on another thread, the first time recover() has read events
        std::atomic<bool> called{false};
        std::vector<loom::RunEvent> load_events(const loom::RunId& id) override {
            auto events = StoreWrapper::load_events(id);
            if (call && !called.exchange(true)) std::thread(call).join();
            return events;
        }
    };
    const auto verb = GENERATE(as<std::string>{}, "deliver", "cancel", "pause");
    INFO(verb);
    Fixture f;
    loom::MemoryStore memory;
    Interleaving store(memory);
    loom::RunId id;
    {
        loom::Executor first(store, f.handlers, {2});
        first.add_workflow(both());
        id = start_suspended(first);
    }
    loom::Executor executor(store, f.handlers, {2});
    auto deliver = [&] {
        CHECK(executor.signal(id, "go", "yes"));
        executor.complete(f.token(0), "done");
    };
    if (verb == "deliver") store.call = deliver;
    if (verb == "cancel") store.call = [&] { CHECK(executor.cancel(id)); };
    if (verb == "pause") store.call = [&] { CHECK(executor.pause(id)); };
    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    REQUIRE(store.called);
    if (verb == "pause") {
        deliver();
        CHECK_FALSE(executor.wait_for(id, 100ms));   // "end" is held by the pause
        CHECK(f.token_count() == 1);
        CHECK(executor.get_run(id).paused);
        executor.resume(id);
    }
    const auto run = executor.wait_for(id, 10s);
    REQUIRE(run);
    CHECK(run->status == (verb == "cancel" ? loom::RunStatus::cancelled : loom::RunStatus::completed));
    if (verb != "cancel") CHECK(run->output == Json{{"end", {{"approve", "yes"}, {"job", "done"}}}});
}

// A host process that calls signal() or complete() for a run another process
// executes (a webhook service beside a worker, on one SQLite file) finds the
// run not live and only records the call; the executor running it picks the
// record up at its next control poll (and, for suspended runs, its delivery
// poll, when that is on). Two executors on two connections stand for the two
// processes.
TEST_CASE("signals and completions recorded by another process reach the run at the next poll",
          "[engine][signals][sqlite]") {
    loom::test::TempDir dir;
    Fixture f;
    loom::SqliteStore worker_store(dir.file("runs.db"));
    loom::ExecutorOptions options{2};
    const bool polling = GENERATE(true, false);
    options.delivery_poll = polling ? 20ms : 0ms;
    loom::Executor worker(worker_store, f.handlers, options);
    worker.add_workflow(both());
    const auto id = start_suspended(worker);

    loom::SqliteStore web_store(dir.file("runs.db"));
    loom::Executor web(web_store, f.handlers, {1});
    CHECK(web.signal(id, "go", "yes"));
    web.complete(f.token(0), "done");
    const auto run = worker.wait_for(id, 10s);
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == Json{{"end", {{"approve", "yes"}, {"job", "done"}}}});
    CHECK(f.token_count() == 1);
}

TEST_CASE("a signal no wait step waits for is refused with the names the run waits for and not recorded",
          "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(approval());
    executor.add_workflow(loom::WorkflowBuilder("parent", 1)
                              .step("review", "workflow:approval")
                              .step("done", "wait").input({{"signal", "done"}}).after("review")
                              .build());
    auto id = executor.start("approval");
    REQUIRE(eventually([&] { return status_of(executor, id, "approve") == StepStatus::suspended; }));
    const auto events = executor.history(id).size();
    CHECK_THROWS_WITH(executor.signal(id, "aproval", 1),
                      "[loom.signal.unknown] run " + id +
                          " (workflow \"approval\" version 1) has no wait step for signal \"aproval\"; it "
                          "waits for \"approval\"");
    CHECK(executor.history(id).size() == events);

    // Sent to the parent, the child's signal is refused with the run to send it to.
    auto parent = executor.start("parent");
    REQUIRE(eventually([&] { return status_of(executor, parent, "review") == StepStatus::suspended; }));
    CHECK_THROWS_WITH(executor.signal(parent, "approval"),
                      "[loom.signal.unknown] run " + parent +
                          " (workflow \"parent\" version 1) has no wait step for signal \"approval\"; it "
                          "waits for \"done\"; step \"approve\" of sub-workflow \"approval\" waits for it: "
                          "signal its child run " + parent + ".review");
    // The child run starts once the parent's step is recorded.
    REQUIRE(eventually([&] { return store.load_run(parent + ".review").has_value(); }));
    CHECK(executor.signal(parent + ".review", "approval", {{"by", "ann"}}));
    CHECK(executor.signal(parent, "done"));
    CHECK(executor.wait(parent).status == loom::RunStatus::completed);
    CHECK(executor.signal(id, "approval", {{"by", "ann"}}));
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
}

TEST_CASE("a signal to a run no process runs is checked against its stored definition", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::RunId id;
    {
        loom::Executor executor(store, f.handlers, {2});
        executor.add_workflow(approval());
        id = executor.start("approval");
        REQUIRE(eventually([&] { return status_of(executor, id, "approve") == StepStatus::suspended; }));
    }
    loom::Executor executor(store, f.handlers, {2});   // not recovered: the run is not live here
    CHECK_THROWS_WITH(executor.signal(id, "nope"),
                      "[loom.signal.unknown] run " + id +
                          " (workflow \"approval\" version 1) has no wait step for signal \"nope\"; it "
                          "waits for \"approval\"");
    CHECK(executor.signal(id, "approval", {{"by", "ann"}}));
    executor.recover();
    CHECK(executor.wait(id).step("approve")->output == Json{{"by", "ann"}});
}

TEST_CASE("a wait step whose signal name is a reference takes any signal", "[engine][signals]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(approval({{"signal", "${input.name}"}}));
    auto id = executor.start("approval", {{"name", "go-ahead"}});
    REQUIRE(eventually([&] { return status_of(executor, id, "approve") == StepStatus::suspended; }));
    CHECK(executor.signal(id, "anything"));   // cannot be known to be wrong: recorded
    CHECK(executor.signal(id, "go-ahead", {{"by", "ann"}}));
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
}
