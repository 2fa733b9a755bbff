// for_each: a step that runs its handler once per element of an array, at
// most max_parallel at once, each element with its own attempts, checkpointed
// by index so that an element that completed never runs again.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::test::eventually;
using loom::test::Gate;

namespace {

/// Counts calls per element index, and the most that ran at once.
struct ElementLog {
    std::mutex mutex;
    std::map<std::uint32_t, int> calls;
    int running = 0;
    int most = 0;
    void enter(std::uint32_t index) {
        std::lock_guard lock(mutex);
        ++calls[index];
        most = std::max(most, ++running);
    }
    void leave() {
        std::lock_guard lock(mutex);
        --running;
    }
    int of(std::uint32_t index) {
        std::lock_guard lock(mutex);
        return calls[index];
    }
};

/// "list" -> "each" (for_each over list's output) -> "sum".
loom::Workflow fan_workflow(std::optional<std::uint32_t> max_parallel = std::nullopt,
                            loom::OnError on_error = loom::OnError::fail, int attempts = 1) {
    loom::WorkflowBuilder b("fan", 1);
    b.step("list", "list").input({{"n", "${input.n}"}});
    b.step("each", "square").after("list").for_each("${steps.list.output}")
        .input({{"x", "${item.x}"}, {"at", "${index}"}, {"tag", "${input.tag}"}})
        .on_error(on_error);
    loom::RetryPolicy retry;
    retry.max_attempts = attempts;
    retry.initial_backoff = 1000ms;
    b.retry(retry);
    if (max_parallel) b.max_parallel(*max_parallel);
    b.step("sum", "sum").after("each").run_if_skipped();
    return b.build();
}

/// list: [{x: 0}, {x: 1}, ...]; square: {x*x, at, tag}; sum: total of squares
/// (a failed "each" counts as -1).
void add_handlers(loom::HandlerRegistry& handlers, ElementLog& log,
                  std::function<void(loom::StepContext&)> before = nullptr) {
    handlers.add("list", [](loom::StepContext& ctx) {
        Json out = Json::array();
        for (int i = 0; i < ctx.input<int>("n"); ++i) out.push_back({{"x", i}});
        return out;
    });
    handlers.add("square", [&log, before](loom::StepContext& ctx) -> Json {
        const auto index = *ctx.item_index();
        log.enter(index);
        struct Leave {
            ElementLog& log;
            ~Leave() { log.leave(); }
        } leave{log};
        if (before) before(ctx);
        const int x = ctx.input<int>("x");
        return {{"sq", x * x}, {"at", ctx.input<Json>("at")}, {"tag", ctx.input<Json>("tag")}};
    });
    handlers.add("sum", [](loom::StepContext& ctx) -> Json {
        const Json each = ctx.input<Json>("each");
        if (!each.is_array()) return -1;
        int total = 0;
        for (const Json& e : each) total += e.at("sq").get<int>();
        return total;
    });
}

/// In a handler: holds the attempt until the executor's shutdown cancels it,
/// then fails; as in a crash, the attempt ends without a result.
[[noreturn]] void hold_until_shutdown(Gate& gate, loom::StepContext& ctx) {
    gate.pass();
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
    throw loom::RetryableError("cancelled");
}

/// A process that starts `wf` on the SQLite file `path`, waits until a
/// handler holds `gate` and the stored run satisfies `stored`, then shuts
/// down with the held attempt in flight. Returns the run's id.
loom::RunId run_until_shutdown(const std::string& path, loom::HandlerRegistry& handlers,
                               const loom::Workflow& wf, const Json& input, unsigned threads, Gate& gate,
                               const std::function<bool(const loom::RunInfo&)>& stored) {
    loom::SqliteStore store(path);
    loom::ExecutorOptions options{threads};
    options.shutdown_grace = 0ms;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(wf);
    const auto id = executor.start(wf.name(), input);
    gate.wait_for_waiters(1);
    REQUIRE(eventually([&] { return stored(*store.load_run(id)); }));
    gate.release();
    return id;
}

/// Two processes on one SQLite file: the first runs until shutdown
/// (run_until_shutdown), the second recovers.
struct Restart {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    ElementLog log;
    Gate gate;
    std::atomic<bool> first_process{true};   // the handlers' process
    loom::HandlerRegistry handlers;
    /// The second process: recovers the store's runs and waits for `id`.
    loom::RunInfo recover(const loom::Workflow& wf, const loom::RunId& id) {
        first_process = false;
        loom::SqliteStore store(path);
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(wf);
        executor.recover();
        return executor.wait(id);
    }
};

Json expected_each(int n, const std::string& tag) {
    Json out = Json::array();
    for (int i = 0; i < n; ++i) out.push_back({{"sq", i * i}, {"at", i}, {"tag", tag}});
    return out;
}

}  // namespace

TEST_CASE("for_each runs each element and collects the outputs in input order", "[engine][for_each]") {
    ElementLog log;
    loom::HandlerRegistry handlers;
    // Later elements finish first: order in the output must not depend on it.
    add_handlers(handlers, log, [](loom::StepContext& ctx) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * (7 - *ctx.item_index())));
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {4});
    executor.add_workflow(fan_workflow());
    auto run = executor.wait(executor.start("fan", {{"n", 8}, {"tag", "t"}}));
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == expected_each(8, "t"));
    CHECK(run.step("each")->attempts == 8);   // one per element
    CHECK(run.output["sum"] == 140);
    for (std::uint32_t i = 0; i < 8; ++i) CHECK(log.of(i) == 1);
    // Each element is in the store, for monitoring.
    REQUIRE(run.step("each")->items.size() == 8);
    for (std::uint32_t i = 0; i < 8; ++i) {
        CHECK(run.step("each")->items[i].index == i);
        CHECK(run.step("each")->items[i].status == loom::StepStatus::completed);
        CHECK(run.step("each")->items[i].attempts == 1);
    }
}

TEST_CASE("max_parallel bounds how many elements run at once", "[engine][for_each]") {
    for (std::uint32_t limit : {1u, 3u}) {
        ElementLog log;
        loom::HandlerRegistry handlers;
        add_handlers(handlers, log, [](loom::StepContext&) { std::this_thread::sleep_for(5ms); });
        loom::MemoryStore store;
        loom::Executor executor(store, handlers, {8});
        executor.add_workflow(fan_workflow(limit));
        auto run = executor.wait(executor.start("fan", {{"n", 12}, {"tag", ""}}));
        REQUIRE(run.status == loom::RunStatus::completed);
        CHECK(log.most <= static_cast<int>(limit));
        CHECK(log.most == static_cast<int>(limit));   // 8 threads: the limit is what holds
    }
}

TEST_CASE("an empty array completes the step with an empty array", "[engine][for_each]") {
    ElementLog log;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log);
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(fan_workflow());
    auto run = executor.wait(executor.start("fan", {{"n", 0}, {"tag", ""}}));
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == Json::array());
    CHECK(run.output["sum"] == 0);
}

TEST_CASE("a for_each over something that is not an array fails the step and says what it got",
          "[engine][for_each]") {
    loom::HandlerRegistry handlers;
    handlers.add("h", [](loom::StepContext&) -> Json { return 1; });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("bad", 1).step("each", "h").for_each("${input.xs}").build());
    auto run = executor.wait(executor.start("bad", {{"xs", {{"a", 1}}}}));
    REQUIRE(run.status == loom::RunStatus::failed);
    CHECK(run.step("each")->error ==
          "[loom.for_each.not_array] step \"each\": for_each ${input.xs} is an object, not an array");
    auto missing = executor.wait(executor.start("bad", Json::object()));
    CHECK(missing.step("each")->error.rfind("[loom.input.missing] ${input.xs}: no key \"xs\"", 0) == 0);
}

TEST_CASE("each element is retried on its own", "[engine][for_each]") {
    loom::testing::FakeClock clock;
    ElementLog log;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [](loom::StepContext& ctx) {
        if (*ctx.item_index() == 2 && ctx.attempt() < 3) throw loom::RetryableError("not yet");
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(fan_workflow(std::nullopt, loom::OnError::fail, 3));
    auto id = executor.start("fan", {{"n", 4}, {"tag", ""}});
    // Element 2 waits for its retry in the store, holding no thread. The
    // clock moves only once the retry is scheduled: a retry scheduled after
    // the move would be due past it, and nothing would move the clock again.
    auto waiting_after = [&](int attempts) {
        return eventually([&] {
            auto items = executor.get_run(id).step("each")->items;
            return std::any_of(items.begin(), items.end(), [&](const loom::ItemInfo& i) {
                return i.index == 2 && i.status == loom::StepStatus::waiting && i.attempts == attempts;
            });
        });
    };
    REQUIRE(waiting_after(1));
    clock.advance(1000ms);
    REQUIRE(waiting_after(2));
    CHECK(log.of(2) == 2);
    clock.advance(2000ms);
    auto run = executor.wait(id);
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == expected_each(4, ""));
    CHECK(log.of(0) == 1);
    CHECK(log.of(2) == 3);
    CHECK(run.step("each")->items[2].attempts == 3);
    CHECK(run.step("each")->attempts == 6);
}

TEST_CASE("a failed element stops new ones and fails the step, or lets the run go on under continue",
          "[engine][for_each]") {
    ElementLog log;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [](loom::StepContext& ctx) {
        if (*ctx.item_index() == 1) throw loom::FatalError("bad element");
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(fan_workflow(1));
    SECTION("fail") {
        auto run = executor.wait(executor.start("fan", {{"n", 5}, {"tag", ""}}));
        REQUIRE(run.status == loom::RunStatus::failed);
        CHECK(run.step("each")->status == loom::StepStatus::failed);
        CHECK(run.step("each")->error == "element 1 failed: bad element");
        CHECK(run.error == "step \"each\" failed: element 1 failed: bad element");
        // One at a time: nothing after the failed element started.
        CHECK(log.of(0) == 1);
        CHECK(log.of(2) == 0);
        CHECK(run.step("sum")->status == loom::StepStatus::cancelled);
    }
    SECTION("continue") {
        executor.add_workflow(loom::WorkflowBuilder("fan", 2)
                                  .step("list", "list").input({{"n", "${input.n}"}})
                                  .step("each", "square").after("list").for_each("${steps.list.output}")
                                  .input({{"x", "${item.x}"}, {"at", "${index}"}, {"tag", ""}})
                                  .on_error(loom::OnError::proceed).max_parallel(1)
                                  .step("sum", "sum").after("each")
                                  .build());
        auto run = executor.wait(executor.start("fan", {{"n", 5}}));
        REQUIRE(run.status == loom::RunStatus::completed);
        CHECK(run.step("each")->status == loom::StepStatus::failed);
        CHECK(run.output["sum"] == -1);
    }
}

TEST_CASE("ctx names the element: item_index, an idempotency key per element, log records",
          "[engine][for_each]") {
    std::mutex mutex;
    std::set<std::string> keys;
    loom::HandlerRegistry handlers;
    handlers.add("h", [&](loom::StepContext& ctx) -> Json {
        ctx.log("working");
        std::lock_guard lock(mutex);
        keys.insert(ctx.idempotency_key());
        return *ctx.item_index();
    });
    struct Logs : loom::Observer {
        std::mutex mutex;
        std::set<std::uint32_t> items;
        void on_log(const loom::LogRecord& r) override {
            std::lock_guard lock(mutex);
            if (r.item) items.insert(*r.item);
        }
    } logs;
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2, &logs});
    executor.add_workflow(loom::WorkflowBuilder("w", 1).step("each", "h").for_each("${input}").build());
    auto id = executor.start("w", Json{"a", "b", "c"});
    auto run = executor.wait(id);
    CHECK(run.step("each")->output == Json{0, 1, 2});
    CHECK(keys == std::set<std::string>{id + "/each[0]", id + "/each[1]", id + "/each[2]"});
    CHECK(logs.items == std::set<std::uint32_t>{0, 1, 2});
}

TEST_CASE("an element that completed before a restart does not run again", "[engine][for_each][restart]") {
    Restart r;
    add_handlers(r.handlers, r.log, [&](loom::StepContext& ctx) {
        if (*ctx.item_index() == 3 && r.first_process) hold_until_shutdown(r.gate, ctx);   // half way
    });
    // Elements 0..2 are committed before element 3 started (max_parallel 1);
    // the shutdown finds element 3 in flight, and its failure then is not recorded.
    const auto id = run_until_shutdown(r.path, r.handlers, fan_workflow(1), {{"n", 6}, {"tag", "r"}}, 1, r.gate,
                                       [](const loom::RunInfo& run) { return run.step("each")->items.size() == 3; });
    CHECK(r.log.of(3) == 1);
    CHECK(loom::SqliteStore(r.path).load_run(id)->step("each")->status == loom::StepStatus::running);
    auto run = r.recover(fan_workflow(1), id);
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == expected_each(6, "r"));
    for (std::uint32_t i : {0u, 1u, 2u, 4u, 5u}) CHECK(r.log.of(i) == 1);
    CHECK(r.log.of(3) == 2);   // in flight at the restart: at least once
}

TEST_CASE("a retry wait of an element survives a restart and fires at its time", "[engine][for_each][restart]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    loom::testing::FakeClock clock;
    ElementLog log;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [](loom::StepContext& ctx) {
        if (*ctx.item_index() == 1 && ctx.attempt() == 1) throw loom::RetryableError("later");
    });
    loom::RunId id;
    loom::TimePoint due;
    {
        loom::SqliteStore store(path);
        loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
        executor.add_workflow(fan_workflow(std::nullopt, loom::OnError::fail, 2));
        id = executor.start("fan", {{"n", 3}, {"tag", ""}});
        REQUIRE(eventually([&] {
            auto items = store.load_run(id)->step("each")->items;
            return items.size() == 3 && items[1].status == loom::StepStatus::waiting;
        }));
        due = *store.load_run(id)->step("each")->items[1].wake_at;
    }
    loom::SqliteStore store(path);
    loom::Executor executor(store, handlers, {2, nullptr, {}, {}, &clock});
    executor.add_workflow(fan_workflow(std::nullopt, loom::OnError::fail, 2));
    executor.recover();
    CHECK_FALSE(executor.wait_for(id, 50ms));   // not due yet
    CHECK(log.of(1) == 1);
    clock.advance(due - clock.now());
    auto run = executor.wait(id);
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(log.of(0) == 1);
    CHECK(log.of(1) == 2);
    CHECK(log.of(2) == 1);
}

TEST_CASE("retry() of a failed run keeps completed elements and rerun() runs them all again",
          "[engine][for_each][operator]") {
    ElementLog log;
    std::atomic<bool> broken{true};
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [&](loom::StepContext& ctx) {
        if (*ctx.item_index() == 2 && broken) throw loom::FatalError("broken");
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(fan_workflow(1));
    auto id = executor.start("fan", {{"n", 4}, {"tag", ""}});
    REQUIRE(executor.wait(id).status == loom::RunStatus::failed);
    CHECK(log.of(3) == 0);
    broken = false;
    executor.retry(id);
    auto run = executor.wait(id);
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == expected_each(4, ""));
    CHECK(log.of(0) == 1);
    CHECK(log.of(1) == 1);
    CHECK(log.of(2) == 2);
    CHECK(log.of(3) == 1);

    executor.rerun(id, "each");
    run = executor.wait(id);
    REQUIRE(run.status == loom::RunStatus::completed);
    for (std::uint32_t i = 0; i < 4; ++i) CHECK(log.of(i) == (i == 2 ? 3 : 2));
    CHECK(run.step("each")->items.size() == 4);
}

TEST_CASE("cancel stops a fan-out at once, also while an element waits for a long retry",
          "[engine][for_each][cancel]") {
    ElementLog log;
    Gate gate;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [&](loom::StepContext& ctx) {
        if (*ctx.item_index() == 0) throw loom::RetryableError("wait an hour");
        if (*ctx.item_index() == 1) gate.pass();
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {4});
    loom::RetryPolicy hour;
    hour.max_attempts = 5;
    hour.initial_backoff = 3'600'000ms;
    hour.max_backoff = 3'600'000ms;
    executor.add_workflow(loom::WorkflowBuilder("fan", 1)
                              .step("each", "square").for_each("${input}")
                              .input({{"x", "${item}"}, {"at", "${index}"}, {"tag", ""}})
                              .retry(hour).max_parallel(2)
                              .build());
    auto id = executor.start("fan", Json{0, 1, 2, 3});
    gate.wait_for_waiters(1);
    REQUIRE(eventually([&] {
        auto items = executor.get_run(id).step("each")->items;
        return !items.empty() && items[0].status == loom::StepStatus::waiting;
    }));
    executor.cancel(id);
    gate.release();
    auto run = executor.wait(id);   // the hour-long wait does not hold it
    CHECK(run.status == loom::RunStatus::cancelled);
    CHECK(run.step("each")->status == loom::StepStatus::failed);
    CHECK(run.step("each")->error == "[loom.for_each.stopped] the run stopped with 1 of 4 elements done");
    CHECK(log.of(2) == 0);
}

TEST_CASE("an element attempt that runs past timeout_ms fails and is retried", "[engine][for_each][timeout]") {
    std::atomic<int> slow_calls{0};
    loom::HandlerRegistry handlers;
    handlers.add("h", [&](loom::StepContext& ctx) -> Json {
        if (*ctx.item_index() == 1 && ctx.attempt() == 1) {
            ++slow_calls;
            while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
            return "late";
        }
        return ctx.attempt();
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    loom::RetryPolicy twice;
    twice.max_attempts = 2;
    twice.initial_backoff = 0ms;
    executor.add_workflow(loom::WorkflowBuilder("t", 1)
                              .step("each", "h").for_each("${input}").timeout(50ms).retry(twice)
                              .build());
    auto run = executor.wait(executor.start("t", Json{0, 1, 2}));
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == Json{1, 2, 1});
    CHECK(slow_calls == 1);
}

TEST_CASE("a run deadline gives up a fan-out's running elements", "[engine][for_each][deadline]") {
    Gate gate;
    loom::HandlerRegistry handlers;
    handlers.add("h", [&](loom::StepContext&) -> Json {
        gate.pass();
        return 1;
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("d", 1)
                              .step("each", "h").for_each("${input}").deadline(100ms)
                              .build());
    auto id = executor.start("d", Json{0, 1, 2});
    auto run = executor.wait(id);   // ends at its deadline with the handlers still blocked
    gate.release();
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "[loom.run.deadline] the run passed its deadline of 100 ms");
    CHECK(run.step("each")->status == loom::StepStatus::failed);
    CHECK(run.step("each")->error.find("given up: the run passed its deadline") != std::string::npos);
}

TEST_CASE("pause holds a fan-out's next elements until resume", "[engine][for_each][operator]") {
    ElementLog log;
    Gate gate;
    loom::HandlerRegistry handlers;
    add_handlers(handlers, log, [&](loom::StepContext& ctx) {
        if (*ctx.item_index() == 0) gate.pass();
    });
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(fan_workflow(1));
    auto id = executor.start("fan", {{"n", 3}, {"tag", ""}});
    gate.wait_for_waiters(1);
    executor.pause(id);
    gate.release();
    REQUIRE(eventually([&] { return executor.get_run(id).step("each")->items.size() == 1; }));
    CHECK_FALSE(executor.wait_for(id, 100ms));
    CHECK(log.of(1) == 0);
    executor.resume(id);
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
    CHECK(log.of(1) == 1);
}

TEST_CASE("WorkflowHarness drives a fan-out with failing elements and crashes at every commit",
          "[engine][for_each][testing]") {
    loom::HandlerRegistry handlers;
    ElementLog log;
    add_handlers(handlers, log);
    // 4 attempts: an attempt a crash interrupts counts, and one is spare for it.
    loom::testing::WorkflowHarness h(fan_workflow(2, loom::OnError::fail, 4), handlers);
    h.fail("each", 2, "flaky");   // every element: attempts 1 and 2 fail, after 1 s and 2 s
    auto run = h.run({{"n", 4}, {"tag", "h"}});
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("each")->output == expected_each(4, "h"));
    CHECK(h.calls("each") == 12);

    const auto trials = h.check_every_crash_point({{"n", 4}, {"tag", "h"}}, [](const loom::testing::CrashTrial& t) {
        CHECK(t.run.status == loom::RunStatus::completed);
        CHECK(t.run.output == t.clean.output);
    });
    CHECK(trials > 10);
}

TEST_CASE("a failed element ends the step although siblings wait for a concurrency slot or a long retry",
          "[engine][for_each]") {
    loom::HandlerRegistry handlers;
    handlers.add("h", [](loom::StepContext& ctx) -> Json {
        const auto index = ctx.item_index().value_or(99);   // 99: the step "one" of run g
        if (index == 0) throw loom::FatalError("broken");
        if (index == 1) throw loom::RetryableError("try in an hour");
        return 1;
    });
    loom::MemoryStore store;
    loom::ExecutorOptions options{2};
    options.max_running_per_handler = {{"h", 1}};   // the other elements wait for h's one slot
    loom::Executor executor(store, handlers, options);
    loom::RetryPolicy hour;
    hour.max_attempts = 3;
    hour.initial_backoff = 3'600'000ms;
    hour.max_backoff = 3'600'000ms;
    executor.add_workflow(loom::WorkflowBuilder("f", 1).step("each", "h").for_each("${input}").retry(hour).build());
    SECTION("the failure comes first") {
        auto run = executor.wait(executor.start("f", Json{0, 1, 2, 3, 4}));
        CHECK(run.status == loom::RunStatus::failed);
        CHECK(run.step("each")->error == "element 0 failed: broken");
    }
    SECTION("a sibling already waits an hour for its retry") {
        auto run = executor.wait(executor.start("f", Json{1, 0, 2, 3}));   // ids: index 1 fails fatally
        CHECK(run.status == loom::RunStatus::failed);
    }
    // Another run of the same handler is not starved of the slot.
    executor.add_workflow(loom::WorkflowBuilder("g", 1).step("one", "h").input(2).build());
    CHECK(executor.wait(executor.start("g")).status == loom::RunStatus::completed);
}

TEST_CASE("an element that failed for good before a restart does not run again", "[engine][for_each][restart]") {
    Restart r;
    add_handlers(r.handlers, r.log, [&](loom::StepContext& ctx) {
        if (*ctx.item_index() == 1) {
            if (r.first_process) r.gate.wait_for_waiters(1);   // element 0 has started
            throw loom::FatalError("bad element");
        }
        if (*ctx.item_index() == 0 && r.first_process) hold_until_shutdown(r.gate, ctx);   // while 1 fails
    });
    const auto id = run_until_shutdown(r.path, r.handlers, fan_workflow(2, loom::OnError::fail, 3),
                                       {{"n", 4}, {"tag", ""}}, 2, r.gate, [](const loom::RunInfo& run) {
                                           const auto& items = run.step("each")->items;
                                           return !items.empty() && items.back().status == loom::StepStatus::failed;
                                       });
    REQUIRE(r.log.of(1) == 1);
    auto run = r.recover(fan_workflow(2, loom::OnError::fail, 3), id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("each")->error == "element 1 failed: bad element");
    CHECK(r.log.of(1) == 1);   // FatalError: never again, restart or not
}
