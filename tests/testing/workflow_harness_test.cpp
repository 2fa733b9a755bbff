// loom/testing.hpp's WorkflowHarness: whole workflows with mocks, a FakeClock
// that settle() moves to the next wake-up (retries, timeouts, sleeps,
// deadlines), crashes at chosen commits and their recovery. The block marked
// "workflow-harness" is docs/04-testing.md's second example verbatim;
// docs.snippets checks that.
// snippet begin: workflow-harness
#include <catch2/catch.hpp>
#include <loom/testing.hpp>

using namespace std::chrono_literals;

// The workflow under test: charge the card, ship (the carrier may be down for
// hours), and thank the customer for a large order.
loom::Workflow order_workflow() {
    loom::RetryPolicy hourly;
    hourly.max_attempts = 3;
    hourly.initial_backoff = 1h;   // then 2h
    hourly.max_backoff = 2h;
    return loom::WorkflowBuilder("order", 1)
        .step("charge", "payments.charge").input({{"amount", "${input.amount}"}})
        .step("ship", "carrier.ship").after("charge").retry(hourly)
        .input({{"charge", "${steps.charge.output.id}"}})
        .step("thank", "mail.send").after("ship").when("${input.amount} > 100")
        .build();
}

TEST_CASE("docs: a workflow tested with WorkflowHarness", "[testing][harness][docs]") {
    loom::HandlerRegistry handlers;   // the real handlers
    handlers.add("carrier.ship", [](loom::StepContext& ctx) -> loom::Json {
        return {{"tracking", "T-" + ctx.input<std::string>("charge")}};
    });
    handlers.add("mail.send", [](loom::StepContext&) -> loom::Json { return "sent"; });

    loom::testing::WorkflowHarness h(order_workflow(), handlers);
    h.mock("charge", {{"id", "ch_1"}});    // no real payment in a test
    h.fail("ship", 2, "carrier down");     // attempts 1 and 2 throw RetryableError

    const auto t0 = h.clock().now();
    loom::RunInfo run = h.run({{"amount", 250}});   // backoffs of 1h and 2h: no real waiting
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == loom::Json{{"thank", "sent"}});
    CHECK(run.step("ship")->output == loom::Json{{"tracking", "T-ch_1"}});
    CHECK(h.calls("ship") == 3);
    CHECK(h.clock().now() - t0 == 3h);

    // Crash before each commit in turn, recover, finish: the same outcome, and
    // no step whose completion was committed runs again.
    h.check_every_crash_point({{"amount", 250}}, [](const loom::testing::CrashTrial& t) {
        CHECK(t.run.output == t.clean.output);
        if (!t.at_crash) return;   // the start's own commit failed
        for (const auto& step : t.at_crash->steps)
            if (step.status == loom::StepStatus::completed) CHECK(t.calls_after.at(step.step_id) == 0);
    });
}
// snippet end: workflow-harness

#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <loom/loom.hpp>

#include "support/sync.hpp"

using loom::Json;
using loom::RunStatus;
using loom::StepStatus;
using loom::testing::CrashTrial;
using loom::testing::WorkflowHarness;

namespace {

loom::RetryPolicy retry(int attempts, std::chrono::milliseconds initial) {
    loom::RetryPolicy p;
    p.max_attempts = attempts;
    p.initial_backoff = initial;
    p.max_backoff = 24h;
    return p;
}

/// Handlers that return what they were given: "echo" its input, "id" its step id.
struct Handlers {
    loom::HandlerRegistry registry;
    Handlers() {
        registry.add("echo", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
        registry.add("id", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
    }
};

std::vector<std::string> events_of(WorkflowHarness& h, const loom::RunId& id, const std::string& step) {
    std::vector<std::string> out;
    for (const auto& e : h.executor().history(id))
        if (e.step_id == step) out.push_back(e.kind + " " + std::to_string(e.attempt) + " " + e.detail);
    return out;
}

template <class Call>
std::string error_id(Call&& call) {
    try {
        call();
    } catch (const loom::Error& e) {
        return e.id() + " " + e.what();
    }
    return "no error";
}

}  // namespace

// ---------------------------------------------------------------- mocks

TEST_CASE("a mock replaces one step's handler, even where steps share a handler name",
          "[testing][harness]") {
    Handlers handlers;
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("a", "id")
                          .step("b", "id").after("a")
                          .step("c", "id").after("b")
                          .build(),
                      handlers.registry);
    h.mock("b", {{"canned", true}});
    h.mock("c", [](loom::StepContext& ctx) -> Json { return {{"saw", ctx.input()}}; });
    auto run = h.run();
    CHECK(run.status == RunStatus::completed);
    CHECK(run.step("a")->output == "a");                      // the real handler
    CHECK(run.step("b")->output == Json{{"canned", true}});   // canned output
    CHECK(run.output == Json{{"c", {{"saw", {{"b", {{"canned", true}}}}}}}});
    CHECK(h.calls("a") == 1);
    CHECK(h.calls("b") == 1);
    CHECK(h.calls(run.id, "c") == 1);
    CHECK(h.calls("other-run", "c") == 0);

    auto second = h.run();   // mocks stay; calls add up over runs
    CHECK(second.output == run.output);
    CHECK(h.calls("b") == 2);
    CHECK(h.calls(second.id, "b") == 1);
}

TEST_CASE("fail() throws for the first N attempts, then the real handler or the mock runs",
          "[testing][harness]") {
    Handlers handlers;
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("real", "id").retry(retry(3, 10ms))
                          .step("mocked", "id").retry(retry(5, 10ms))
                          .build(),
                      handlers.registry);
    h.fail("real", 2, "flaky");
    h.mock("mocked", 7).fail("mocked", 4);
    auto run = h.run();
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == Json{{"real", "real"}, {"mocked", 7}});
    CHECK(run.step("real")->attempts == 3);
    CHECK(run.step("mocked")->attempts == 5);
    CHECK(h.calls("real") == 3);
    CHECK(events_of(h, run.id, "real") ==
          std::vector<std::string>{"step.started 1 ", "step.retrying 1 flaky", "step.started 2 ",
                                   "step.retrying 2 flaky", "step.started 3 ", "step.completed 3 "});
    CHECK(events_of(h, run.id, "mocked").at(1) == "step.retrying 1 injected failure");

    SECTION("more failures than attempts fail the run with the last message") {
        h.fail("real", 3, "still down");
        auto failed = h.run();
        CHECK(failed.status == RunStatus::failed);
        CHECK(failed.error == "step \"real\" failed: still down");
        CHECK(failed.step("real")->attempts == 3);
    }
    SECTION("fail(step, 0) removes the failures") {
        h.fail("real", 0).fail("mocked", 0);
        auto clean = h.run();
        CHECK(clean.step("real")->attempts == 1);
        CHECK(clean.step("mocked")->attempts == 1);
    }
}

TEST_CASE("a fatal failure is never retried, whatever the retry policy", "[testing][harness]") {
    Handlers handlers;
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("pay", "id").retry(retry(5, 1h))
                          .step("ship", "id").after("pay")
                          .build(),
                      handlers.registry);
    h.fail("pay", 1, "card declined", /*fatal=*/true);
    const auto t0 = h.clock().now();
    auto run = h.run();
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error == "step \"pay\" failed: card declined");
    CHECK(run.step("pay")->attempts == 1);
    CHECK(run.step("ship")->status == StepStatus::cancelled);
    CHECK(h.calls("ship") == 0);
    CHECK(h.clock().now() == t0);   // nothing waited
}

TEST_CASE("a mock set while a run waits applies to the next attempt", "[testing][harness]") {
    WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").retry(retry(2, 1h)).build());
    h.mock("a", 1).fail("a", 1);
    auto id = h.start();
    REQUIRE(loom::test::eventually([&] { return h.executor().get_run(id).step("a")->status == StepStatus::waiting; }));
    h.mock("a", 2);
    CHECK(h.settle(id).output == Json{{"a", 2}});
}

// ---------------------------------------------------------------- time

TEST_CASE("retries with hour-long backoffs finish in well under a second of real time",
          "[testing][harness][retry]") {
    const unsigned threads = GENERATE(1u, 2u, 4u);
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("a", "x").retry(retry(4, 1h))   // waits 1h, 2h, 4h
                          .step("b", "x").after("a").retry(retry(2, 1h))
                          .step("c", "x").retry(retry(2, 30min))   // in parallel with a
                          .build(),
                      {threads});
    h.mock("a", "A").fail("a", 3).mock("b", "B").fail("b", 1).mock("c", "C").fail("c", 1);
    const auto t0 = h.clock().now();
    const auto real_start = std::chrono::steady_clock::now();
    auto run = h.run();
    CHECK(std::chrono::steady_clock::now() - real_start < 1s);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == Json{{"b", "B"}, {"c", "C"}});
    CHECK(h.calls("a") == 4);
    CHECK(h.clock().now() - t0 == 1h + 2h + 4h + 1h);   // a's waits, then b's
    const auto& c = *run.step("c");
    CHECK(*c.finished_at - t0 == 30min);
}

TEST_CASE("advance() waits until the runs are quiet, then moves the clock", "[testing][harness]") {
    WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").retry(retry(2, 1h)).build());
    h.mock("a", [](loom::StepContext& ctx) -> Json {
        std::this_thread::sleep_for(20ms);   // real work: the retry is not scheduled yet
        if (ctx.attempt() == 1) throw std::runtime_error("first");
        return "second";
    });
    auto id = h.start();
    h.advance(1h);   // after the first attempt failed: its backoff ends now
    auto run = h.wait(id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.step("a")->attempts == 2);
}

TEST_CASE("a step that hangs is given up at its timeout, as settle() moves the clock",
          "[testing][harness][timeout]") {
    Handlers handlers;
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("call", "id").timeout(30s).retry(retry(2, 1h))
                          .build(),
                      handlers.registry);
    h.hang("call");   // the first attempt blocks until it is given up
    const auto t0 = h.clock().now();
    auto run = h.run();
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == Json{{"call", "call"}});
    CHECK(run.step("call")->attempts == 2);
    CHECK(h.clock().now() - t0 == 30s + 1h);
    CHECK(events_of(h, run.id, "call").at(1) == "step.retrying 1 timed out after 30000 ms");
}

TEST_CASE("a mocked handler that blocks until ctx.cancelled() times out when the clock moves",
          "[testing][harness][timeout]") {
    WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").timeout(5min).build());
    std::atomic<bool> saw_cancel{false};
    h.mock("a", [&](loom::StepContext& ctx) -> Json {
        while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
        saw_cancel = true;
        // Returning a result here would race the executor's timeout timer
        // (see "a result returned past the attempt's timeout" below).
        throw loom::RetryableError("noticed");
    });
    auto id = h.start();
    REQUIRE(loom::test::eventually([&] { return h.calls("a") == 1; }));
    h.clock().advance(5min);   // settle() cannot tell this handler waits for time: move it
    auto run = h.wait(id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.step("a")->attempts == 1);
    CHECK(loom::test::eventually([&] { return saw_cancel.load(); }));
}

TEST_CASE("a run's deadline ends a hang without a timeout, and with no limit at all settle() reports a stall",
          "[testing][harness][deadline]") {
    SECTION("deadline") {
        WorkflowHarness h(loom::WorkflowBuilder("w", 1).deadline(10min).step("a", "x").build());
        h.mock("a", 1).hang("a");
        const auto t0 = h.clock().now();
        auto run = h.run();
        CHECK(run.status == RunStatus::failed);
        CHECK(run.error == "[loom.run.deadline] the run passed its deadline of 600000 ms");
        CHECK(h.clock().now() - t0 == 10min);
    }
    SECTION("no limit") {
        WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").step("b", "x").after("a").build());
        h.mock("a", 1).mock("b", 2).hang("a");
        auto id = h.start();
        CHECK(error_id([&] { h.settle(id); }) ==
              "loom.testing.stalled [loom.testing.stalled] run " + id +
                  " cannot end however far the clock moves: nothing is due (unfinished steps: \"a\" "
                  "ready, \"b\" pending); a hang() without a timeout or deadline waits for ever");
        h.executor().cancel(id);
        CHECK(h.wait(id).status == RunStatus::cancelled);
    }
}

TEST_CASE("settle() stops at its limit of fake time", "[testing][harness]") {
    WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").retry(retry(2, 2h)).build());
    h.mock("a", 1).fail("a", 1);
    auto id = h.start();
    CHECK(error_id([&] { h.settle(id, 1h); }) ==
          "loom.testing.time_limit [loom.testing.time_limit] run " + id +
              " is not over within 3600000 ms of fake time: its next wake-up is later");
    CHECK(h.clock().now() == loom::testing::FakeClock::kDefaultStart);   // not moved
    CHECK(h.settle(id, 2h).status == RunStatus::completed);
}

TEST_CASE("a sleep step completes once the harness moves the clock past it", "[testing][harness][sleep]") {
    const auto wf = loom::Workflow::from_json(R"({
        "name": "nap", "version": 1,
        "steps": [
            {"id": "before", "handler": "x"},
            {"id": "nap", "handler": "sleep", "input": {"ms": 3600000}, "depends_on": ["before"]},
            {"id": "after", "handler": "x", "depends_on": ["nap"]}
        ]})");
    WorkflowHarness h(wf);
    h.mock("before", 1).mock("after", 2);
    const auto t0 = h.clock().now();

    SECTION("settle") {
        auto run = h.run();
        CHECK(run.status == RunStatus::completed);
        CHECK(run.output == Json{{"after", 2}});
        CHECK(h.clock().now() - t0 == 1h);
        CHECK(h.calls("nap") == 0);   // the executor's own step
    }
    SECTION("advance") {
        auto id = h.start();
        h.advance(59min);
        CHECK_FALSE(h.executor().wait_for(id, 20ms));
        h.advance(1min);
        CHECK(h.wait(id).status == RunStatus::completed);
    }
    CHECK(error_id([&] { h.mock("nap", 1); }) ==
          "loom.testing.not_mockable [loom.testing.not_mockable] step \"nap\" is of the built-in type "
          "\"sleep\", which cannot be mocked; move the clock to end its wait");
}

TEST_CASE("conditions see mocked outputs, and skipped steps never call their handlers",
          "[testing][harness][flow]") {
    Handlers handlers;
    WorkflowHarness h(loom::WorkflowBuilder("w", 1)
                          .step("score", "risk.score")
                          .step("review", "id").after("score").when("${steps.score.output} > 50")
                          .step("approve", "id").after("score").when("${steps.score.output} <= 50")
                          .step("notify", "id").after("review").run_if_skipped()
                          .build(),
                      handlers.registry);
    h.mock("score", 80);
    auto risky = h.run();
    CHECK(risky.step("review")->status == StepStatus::completed);
    CHECK(risky.step("approve")->status == StepStatus::skipped);
    h.mock("score", 10);
    auto safe = h.run();
    CHECK(safe.step("review")->status == StepStatus::skipped);
    CHECK(safe.step("approve")->status == StepStatus::completed);
    CHECK(safe.step("notify")->status == StepStatus::completed);
    CHECK(h.calls("review") == 1);
    CHECK(h.calls("approve") == 1);
    CHECK(h.calls("notify") == 2);
}

// ---------------------------------------------------------------- crashes

namespace {

/// Five steps, one retried with a long backoff, one sleeping, parallel
/// branches: enough commits to crash between all kinds of transitions.
loom::Workflow crash_workflow() {
    return loom::Workflow::from_json(R"({
        "name": "fulfil", "version": 1,
        "defaults": {"retry": {"max_attempts": 3}},
        "steps": [
            {"id": "reserve", "handler": "echo", "input": {"sku": "${input.sku}"}},
            {"id": "charge", "handler": "pay", "input": {"amount": "${input.amount}"},
             "retry": {"max_attempts": 3, "initial_backoff_ms": 600000, "max_backoff_ms": 600000}},
            {"id": "pack", "handler": "echo", "input": {"sku": "${steps.reserve.output.sku}"},
             "depends_on": ["reserve"]},
            {"id": "cool_off", "handler": "sleep", "input": {"ms": 60000}, "depends_on": ["charge"]},
            {"id": "ship", "handler": "echo", "depends_on": ["pack", "cool_off"],
             "input": {"box": "${steps.pack.output}", "paid": "${steps.charge.output}"}}
        ]})");
}

}  // namespace

TEST_CASE("crash_at(n) fails the n-th commit, and recover() resumes with completed steps kept",
          "[testing][harness][crash]") {
    Handlers handlers;
    WorkflowHarness h(crash_workflow(), handlers.registry, {1});
    h.mock("charge", [](loom::StepContext& ctx) -> Json { return ctx.input<Json>("amount"); });
    const Json input{{"sku", "A-1"}, {"amount", 30}};
    const auto clean = h.run(input);
    REQUIRE(clean.status == RunStatus::completed);

    const std::size_t before = h.commit_count();
    h.crash_at(3);
    auto id = h.start(input);
    CHECK_THROWS_AS(h.settle(id), loom::StoreError);
    CHECK(h.crashed());
    CHECK(h.commit_count() == before + 2);   // the third failed and nothing after it landed
    CHECK_THROWS_AS(h.start(input), loom::StoreError);   // a dead process commits nothing
    const auto at_crash = *h.store().load_run(id);
    CHECK(at_crash.status == RunStatus::running);

    CHECK(h.recover() == std::vector<loom::RunId>{id});
    CHECK_FALSE(h.crashed());
    auto run = h.settle(id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == clean.output);
    for (const auto& step : at_crash.steps)
        if (step.status == StepStatus::completed) CHECK(h.calls(id, step.step_id) == 1);
}

TEST_CASE("check_every_crash_point: every crash point recovers to the clean run's output",
          "[testing][harness][crash]") {
    const unsigned threads = GENERATE(1u, 2u);
    Handlers handlers;
    WorkflowHarness h(crash_workflow(), handlers.registry, {threads});
    h.mock("charge", [](loom::StepContext& ctx) -> Json { return ctx.input<Json>("amount"); });
    h.fail("charge", 1, "gateway timeout");
    const Json input{{"sku", "A-1"}, {"amount", 30}};
    const std::size_t clean_commits = h.commits_of_a_clean_run(input);
    CHECK(clean_commits >= 5);

    std::set<std::size_t> crashed_at;
    int recovered_from_nothing = 0, reran_in_flight = 0;
    const std::size_t trials = h.check_every_crash_point(input, [&](const CrashTrial& t) {
        INFO("crash at commit " << t.crash_at);
        CHECK(t.clean.status == RunStatus::completed);
        CHECK(t.run.status == RunStatus::completed);
        CHECK(t.run.output == t.clean.output);
        CHECK(t.run.output == Json{{"ship", {{"box", {{"sku", "A-1"}}}, {"paid", 30}}}});
        if (!t.crashed) return;
        crashed_at.insert(t.crash_at);
        if (!t.at_crash) {
            ++recovered_from_nothing;   // the start's commit failed: started again
            CHECK(t.crash_at == 1);
            return;
        }
        for (const auto& step : t.at_crash->steps) {
            const int after = t.calls_after.at(step.step_id);
            if (step.status == StepStatus::completed) {
                CHECK(after == 0);   // committed: never again
            } else if (after > 0 && t.calls_before.at(step.step_id) > 0 &&
                       step.status != StepStatus::waiting) {
                ++reran_in_flight;   // in flight at the crash: at least once
            }
        }
    });
    CHECK(trials >= clean_commits);
    CHECK(recovered_from_nothing == 1);
    for (std::size_t n = 1; n <= clean_commits && n < trials; ++n) CHECK(crashed_at.count(n) == 1);
    CHECK_FALSE(h.crashed());
    CHECK(h.run(input).output == h.run(input).output);   // the harness works on afterwards
    (void)reran_in_flight;   // depends on timing; at-least-once allows it
}

TEST_CASE("a checker's failure names the crash point", "[testing][harness][crash]") {
    WorkflowHarness h(loom::WorkflowBuilder("w", 1).step("a", "x").step("b", "x").after("a").build());
    h.mock("a", 1).mock("b", 2);
    std::vector<std::size_t> seen;
    try {
        h.check_every_crash_point({}, [&](const CrashTrial& t) {
            seen.push_back(t.crash_at);
            if (t.crash_at == 2) throw std::runtime_error("wrong at 2");
        });
        FAIL("the checker's exception was swallowed");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "wrong at 2");
    }
    CHECK(seen == std::vector<std::size_t>{1, 2});
}

// ---------------------------------------------------------------- bad input

TEST_CASE("WorkflowHarness refuses unknown steps, missing handlers and bad counts",
          "[testing][harness][bad_input]") {
    Handlers handlers;
    const auto wf = loom::WorkflowBuilder("w", 1)
                        .step("a", "id")
                        .step("b", "unregistered").after("a")
                        .build();
    WorkflowHarness h(wf, handlers.registry);
    const std::string unknown =
        "loom.testing.unknown_step [loom.testing.unknown_step] workflow \"w\" has no step \"zz\"";
    CHECK(error_id([&] { h.mock("zz", 1); }) == unknown);
    CHECK(error_id([&] { h.mock("zz", [](loom::StepContext&) -> Json { return 1; }); }) == unknown);
    CHECK(error_id([&] { h.fail("zz", 1); }) == unknown);
    CHECK(error_id([&] { h.hang("zz"); }) == unknown);
    CHECK(error_id([&] { h.calls("zz"); }) == unknown);
    CHECK(error_id([&] { h.mock("a", loom::HandlerRegistry::Function{}); }) ==
          "loom.handler.null [loom.handler.null] WorkflowHarness::mock: the function for step \"a\" is null");
    CHECK(error_id([&] { h.fail("a", -1); }) ==
          "loom.testing.bad_count [loom.testing.bad_count] WorkflowHarness::fail: -1 is not a valid count");
    CHECK(error_id([&] { h.hang("a", -2); }).rfind("loom.testing.bad_count ", 0) == 0);
    CHECK(error_id([&] { h.crash_at(0); }).rfind("loom.testing.bad_count ", 0) == 0);
    CHECK(error_id([&] { h.advance(-1ms); }).rfind("loom.testing.clock_backwards ", 0) == 0);

    // Step b has neither a registered handler nor a mock: refused at start.
    CHECK(error_id([&] { h.start(); }) ==
          "loom.handler.unknown [loom.handler.unknown] workflow \"w\" step \"b\" uses handler "
          "\"unregistered\", which is neither registered nor mocked");
    CHECK(h.store().list_runs().empty());
    h.mock("b", "mocked");
    CHECK(h.run().output == Json{{"b", "mocked"}});

    WorkflowHarness bare(wf);   // no registry: every step needs a mock
    CHECK(error_id([&] { bare.start(); }).find("step \"a\" uses handler \"id\"") != std::string::npos);
}

TEST_CASE("a reserved handler name cannot be mocked, and a crashed harness must recover first",
          "[testing][harness][bad_input]") {
    WorkflowHarness h(loom::Workflow::from_json(
        R"({"name": "w", "version": 1, "steps": [{"id": "a", "handler": "x"}, {"id": "w", "handler": "wait"}]})"));
    CHECK(error_id([&] { h.mock("w", 1); }) ==
          "loom.testing.not_mockable [loom.testing.not_mockable] step \"w\" is of the built-in type "
          "\"wait\", which cannot be mocked; send its signal with executor().signal()");
    CHECK(error_id([&] { h.start(); }).rfind("loom.handler.unknown ", 0) == 0);

    WorkflowHarness ok(loom::WorkflowBuilder("w", 1).step("a", "x").build());
    ok.mock("a", 1);
    ok.crash_at(1);
    CHECK_THROWS_AS(ok.start(), loom::StoreError);
    CHECK(error_id([&] { ok.check_every_crash_point({}, [](const CrashTrial&) {}); }) ==
          "loom.testing.crashed [loom.testing.crashed] check_every_crash_point: the harness has "
          "crashed; recover() first");
    CHECK(ok.recover().empty());
    CHECK(ok.run().status == RunStatus::completed);
}

TEST_CASE("settle() moves the clock to a wait step's timeout", "[testing][harness][signals]") {
    WorkflowHarness h(loom::Workflow::from_json(R"({"name": "w", "version": 1, "steps": [
        {"id": "approve", "handler": "wait", "input": {"signal": "ok", "timeout_ms": 86400000},
         "on_error": "continue"},
        {"id": "after", "handler": "x", "depends_on": ["approve"], "input": {"why": "${steps.approve.error}"}}]})"));
    h.mock("after", [](loom::StepContext& ctx) -> Json { return ctx.input().at("why"); });
    const auto t0 = h.clock().now();
    auto run = h.run();
    CHECK(run.status == RunStatus::completed);
    CHECK(run.step("approve")->status == StepStatus::failed);
    CHECK(run.output == Json{{"after", "[loom.wait.timeout] no signal \"ok\" within 86400000 ms"}});
    CHECK(h.clock().now() - t0 == 24h);
}

namespace {

// A parent whose "review" step runs the sub-workflow "review", which waits a day
// for a signal and then records the decision.
loom::Workflow expense() {
    return loom::WorkflowBuilder("expense", 1)
        .step("submit", "x")
        .step("review", "workflow:review").input({{"amount", "${input.amount}"}}).after("submit")
        .step("pay", "x").input({{"decision", "${steps.review.output.decide}"}}).after("review")
        .build();
}

loom::Workflow review() {
    return loom::WorkflowBuilder("review", 1)
        .step("approve", "wait").input({{"signal", "approved"}, {"timeout_ms", 86'400'000}})
        .on_error(loom::OnError::proceed)
        .step("decide", "review.decide").input({{"status", "${steps.approve.status}"}}).after("approve")
        .build();
}

}  // namespace

TEST_CASE("a harness runs sub-workflows given to add_workflow, with their handlers and mocks",
          "[testing][harness][children]") {
    loom::HandlerRegistry handlers;
    handlers.add("review.decide", [](loom::StepContext& ctx) -> Json {
        return ctx.input().at("status") == "completed" ? "approved" : "rejected";
    });
    WorkflowHarness h(expense(), handlers);
    h.mock("submit", 1).mock("pay", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
    CHECK(error_id([&] { h.start(); }) ==
          "loom.workflow.unknown [loom.workflow.unknown] workflow \"expense\" step \"review\" runs workflow "
          "\"review\", which is not registered");
    h.add_workflow(review(), handlers);

    SECTION("the child's wait times out as settle() moves the clock") {
        auto run = h.run({{"amount", 5}});
        CHECK(run.status == RunStatus::completed);
        CHECK(run.output == Json{{"pay", {{"decision", "rejected"}}}});
        CHECK(h.calls("review/decide") == 1);
        CHECK(h.store().load_run(run.id + ".review")->status == RunStatus::completed);
    }
    SECTION("a child step is mocked by its workflow/step name") {
        h.mock("review/decide", "waved through");
        auto id = h.start({{"amount", 5}});
        h.advance(1h);
        h.executor().signal(id + ".review", "approved");
        CHECK(h.settle(id).output == Json{{"pay", {{"decision", "waved through"}}}});
        CHECK(h.calls("review/decide") == 1);
    }
    CHECK(error_id([&] { h.mock("decide", 1); }) ==
          "loom.testing.unknown_step [loom.testing.unknown_step] workflow \"expense\" has no step \"decide\"");
    CHECK(error_id([&] { h.add_workflow(review()); }).rfind("loom.testing.workflow_added ", 0) == 0);
}

TEST_CASE("a harness mocks a sub-workflow step's outcome without a child run", "[testing][harness][children]") {
    WorkflowHarness h(expense());   // "review" is neither added nor registered: mocked, it needs neither
    h.mock("submit", 1).mock("pay", [](loom::StepContext& ctx) -> Json { return ctx.input(); });

    SECTION("output") {
        h.mock("review", {{"decide", "approved"}});
        auto run = h.run({{"amount", 5}});
        CHECK(run.output == Json{{"pay", {{"decision", "approved"}}}});
        CHECK(run.step("review")->output == Json{{"decide", "approved"}});
        CHECK(h.calls("review") == 1);
        CHECK_FALSE(h.store().load_run(run.id + ".review"));
    }
    SECTION("function of the step's input") {
        h.mock("review", [](loom::StepContext& ctx) -> Json {
            return {{"decide", ctx.input().at("amount").get<int>() > 100 ? "escalate" : "approved"}};
        });
        CHECK(h.run({{"amount", 500}}).output == Json{{"pay", {{"decision", "escalate"}}}});
    }
    SECTION("failure") {
        h.fail("review", 1, "reviewer is away");
        auto run = h.run({{"amount", 5}});
        CHECK(run.status == RunStatus::failed);
        CHECK(run.step("review")->error == "reviewer is away");
        CHECK(h.calls("pay") == 0);
    }
    CHECK(error_id([&] { h.hang("review"); }) ==
          "loom.testing.not_mockable [loom.testing.not_mockable] step \"review\" runs a sub-workflow, which "
          "cannot hang: it has no attempt to time out; mock its outcome or fail() it");
}

// ---------------------------------------------------------------- executor bugs found

// Found by this kit: an attempt that returned after its timeout had passed by
// the clock, but before the timeout's timer fired, was accepted. With a
// FakeClock the handler wins that race nearly every time.
TEST_CASE("executor: a result returned past the attempt's timeout is discarded",
          "[testing][executor][timeout]") {
    loom::testing::FakeClock clock;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("slow", [&clock](loom::StepContext& ctx) -> Json {
        clock.advance(5min);   // the work takes five minutes
        return ctx.cancelled() ? "late" : "in time";
    });
    loom::ExecutorOptions options;
    options.threads = 2;
    options.clock = &clock;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(loom::WorkflowBuilder("w", 1).step("a", "slow").timeout(1min).build());
    auto run = executor.wait(executor.start("w"));
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error == "step \"a\" failed: timed out after 60000 ms");
    CHECK(run.output.is_null());   // fails with {"a": "late"}
}
