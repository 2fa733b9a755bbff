// Executor behaviour on MemoryStore (and SqliteStore where durability matters):
// data passing, parallelism, failure, cancellation, recovery, group commit,
// shutdown with handlers in flight.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/flaky_store.hpp"
#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::test::Gate;
using loom::test::eventually;
using loom::test::FlakyStore;
using loom::test::RunCounter;
using loom::test::release_later;

namespace {

struct Recorder : loom::Observer {
    std::mutex mutex;
    std::vector<std::string> lines;
    void on_step_finished(const loom::StepEvent& e) override {
        std::lock_guard lock(mutex);
        lines.push_back("step " + e.step_id + " " + std::string(loom::to_string(e.status)));
    }
    void on_run_finished(const loom::RunId&, loom::RunStatus s, const std::string&) override {
        std::lock_guard lock(mutex);
        lines.push_back("run " + std::string(loom::to_string(s)));
    }
    void on_log(const loom::LogRecord& r) override {
        std::lock_guard lock(mutex);
        lines.push_back("log " + r.step_id + " " + r.message);
    }
};

loom::Workflow hello() {
    return loom::WorkflowBuilder("hello", 1)
        .step("a", "add").input({{"x", "${input.x}"}, {"y", 1}})
        .step("b", "add").input({{"x", "${steps.a.output}"}, {"y", 10}}).after("a")
        .step("c", "add").input({{"x", "${steps.b.output}"}, {"y", 100}}).after("b")
        .build();
}

void add_math(loom::HandlerRegistry& h) {
    h.add("add", [](loom::StepContext& ctx) -> Json {
        return ctx.input<int>("x") + ctx.input<int>("y");
    });
}

}  // namespace

TEST_CASE("a chain passes outputs along and the run reports every step", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_math(handlers);
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(hello());

    auto id = executor.start("hello", {{"x", 1}});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"c", 112}});
    CHECK(run.input == Json{{"x", 1}});
    CHECK(run.error.empty());
    CHECK(run.finished_at.has_value());
    REQUIRE(run.steps.size() == 3);
    CHECK(run.steps[0].step_id == "a");
    CHECK(run.steps[1].output == 12);
    for (const auto& s : run.steps) {
        CHECK(s.status == loom::StepStatus::completed);
        CHECK(s.attempts == 1);
        CHECK(s.started_at.has_value());
        CHECK(s.finished_at >= s.started_at);
    }
    auto history = executor.history(id);
    REQUIRE(history.size() >= 2);
    CHECK(history.front().kind == loom::event::run_started);
    CHECK(history.back().kind == loom::event::run_completed);
}

TEST_CASE("a step without input receives its dependencies' outputs by id", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("const", [](loom::StepContext& ctx) -> Json { return ctx.step_id() + "!"; });
    handlers.add("echo", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("fan", 1)
                              .step("l", "const")
                              .step("r", "const")
                              .step("join", "echo").after({"l", "r"})
                              .build());
    auto run = executor.wait(executor.start("fan"));
    CHECK(run.output == Json{{"join", {{"l", "l!"}, {"r", "r!"}}}});
}

TEST_CASE("independent steps run in parallel", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    Gate gate;
    std::atomic<int> inside{0}, max_inside{0};
    handlers.add("hold", [&](loom::StepContext&) -> Json {
        int now = ++inside;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {}
        gate.pass();
        --inside;
        return nullptr;
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(
        loom::WorkflowBuilder("par", 1).step("a", "hold").step("b", "hold").build());
    auto id = executor.start("par");
    gate.wait_for_waiters(2);   // both handlers are inside at once
    gate.release();
    CHECK(executor.wait(id).status == loom::RunStatus::completed);
    CHECK(max_inside == 2);
}

TEST_CASE("many concurrent runs each run every step exactly once", "[engine][executor]") {
    const unsigned threads = GENERATE(1u, 2u, 4u);
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    RunCounter counter;
    handlers.add("count", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.idempotency_key());
        return ctx.step_id();
    });
    loom::Executor executor(store, handlers, {threads});
    executor.add_workflow(loom::WorkflowBuilder("diamond", 1)
                              .step("top", "count")
                              .step("left", "count").after("top")
                              .step("right", "count").after("top")
                              .step("bottom", "count").after({"left", "right"})
                              .build());
    std::vector<loom::RunId> ids;
    for (int i = 0; i < 50; ++i) ids.push_back(executor.start("diamond", {{"i", i}}));
    for (const auto& id : ids) {
        auto run = executor.wait(id);
        REQUIRE(run.status == loom::RunStatus::completed);
        CHECK(run.output == Json{{"bottom", "bottom"}});
        for (const char* s : {"top", "left", "right", "bottom"})
            CHECK(counter.get(id + "/" + s) == 1);
    }
    CHECK(store.unfinished_runs().empty());
}

TEST_CASE("a failing step fails the run and nothing downstream starts", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    RunCounter counter;
    Gate gate;
    handlers.add("boom", [&](loom::StepContext&) -> Json {
        gate.wait_for_waiters(1);   // the sibling is in flight when this fails
        throw std::runtime_error("disk on fire");
    });
    handlers.add("slow", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        gate.pass();
        return 7;
    });
    handlers.add("after", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        return nullptr;
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("failing", 1)
                              .step("bad", "boom")
                              .step("sibling", "slow")
                              .step("next", "after").after("bad")
                              .step("next2", "after").after("sibling")
                              .build());
    auto id = executor.start("failing");
    std::thread opener([&] {
        std::this_thread::sleep_for(50ms);
        gate.release();
    });
    auto run = executor.wait(id);
    opener.join();
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"bad\" failed: disk on fire");
    CHECK(run.step("bad")->status == loom::StepStatus::failed);
    CHECK(run.step("bad")->error == "disk on fire");
    // The in-flight sibling finished and its result was kept.
    CHECK(run.step("sibling")->status == loom::StepStatus::completed);
    CHECK(run.step("sibling")->output == 7);
    CHECK(counter.get("next") == 0);
    CHECK(counter.get("next2") == 0);
    CHECK(run.step("next")->status == loom::StepStatus::cancelled);
}

TEST_CASE("an output that cannot be stored fails the step with a clear error", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("bad_utf8", [](loom::StepContext&) -> Json { return std::string("\xff\xfe"); });
    loom::Executor executor(store, handlers, {1});
    executor.add_workflow(loom::WorkflowBuilder("utf", 1).step("s", "bad_utf8").build());
    auto run = executor.wait(executor.start("utf"));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"s\" failed: [loom.payload.not_utf8] the output cannot be stored: "
                       "[json.exception.type_error.316] invalid UTF-8 byte at index 0: 0xFF");
}

TEST_CASE("start refuses a run input that is too deep, too large or not UTF-8", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_math(handlers);
    loom::ExecutorOptions options;
    options.threads = 1;
    options.payload.max_bytes = 1000;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(hello());
    Json deep = Json::array();
    Json* cur = &deep;
    for (int i = 0; i < 100'000; ++i) cur = &cur->emplace_back(Json::array());
    REQUIRE_THROWS_WITH(executor.start("hello", deep),
                        "[loom.payload.too_deep] the run's input is nested deeper than 256 levels");
    REQUIRE_THROWS_WITH(executor.start("hello", {{"x", std::string(2000, 'a')}}),
                        "[loom.payload.too_large] the run's input is 2008 bytes as JSON; the limit is 1000");
    REQUIRE_THROWS_AS(executor.start("hello", {{"x", std::string("\xc3")}}), loom::InvalidArgument);
    CHECK(store.list_runs().empty());
}

TEST_CASE("start refuses unknown workflows and handlers and records nothing", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::Executor executor(store, handlers, {1});
    REQUIRE_THROWS_WITH(executor.start("nope"),
                        "[loom.workflow.unknown] workflow \"nope\" is not registered");
    executor.add_workflow(hello());
    REQUIRE_THROWS_WITH(executor.start("hello", Json::object(), {2, ""}),
                        "[loom.workflow.unknown] workflow \"hello\" version 2 is not registered");
    REQUIRE_THROWS_AS(executor.start("hello"), loom::NotFound);
    REQUIRE_THROWS_WITH(executor.start("hello"),
                        "[loom.handler.unknown] workflow \"hello\" step \"a\" uses handler \"add\", "
                        "which is not registered");
    CHECK(store.list_runs().empty());
    REQUIRE_THROWS_WITH(executor.get_run("missing"), "[loom.run.unknown] run missing does not exist");
    REQUIRE_THROWS_AS(executor.wait("missing"), loom::NotFound);
    REQUIRE_THROWS_AS(executor.cancel("missing"), loom::NotFound);
}

TEST_CASE("a version is registered once with one content", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::Executor executor(store, handlers, {1});
    executor.add_workflow(hello());
    executor.add_workflow(hello());   // identical: fine
    auto other = loom::WorkflowBuilder("hello", 1).step("only", "add").build();
    REQUIRE_THROWS_AS(executor.add_workflow(other), loom::Conflict);
    REQUIRE(store.list_workflows().size() == 1);
    CHECK(store.list_workflows()[0].hash == hello().hash());
}

TEST_CASE("the highest version starts unless one is named", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("v", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
    loom::Executor executor(store, handlers, {1});
    executor.add_workflow(loom::WorkflowBuilder("w", 1).step("one", "v").build());
    executor.add_workflow(loom::WorkflowBuilder("w", 2).step("two", "v").build());
    CHECK(executor.wait(executor.start("w")).output == Json{{"two", "two"}});
    CHECK(executor.wait(executor.start("w", {}, {1, ""})).output == Json{{"one", "one"}});
}

TEST_CASE("cancel stops new steps and tells running handlers", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    RunCounter counter;
    std::atomic<bool> started{false};
    handlers.add("spin", [&](loom::StepContext& ctx) -> Json {
        started = true;
        while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
        return "saw cancel";
    });
    handlers.add("after", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        return nullptr;
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(
        loom::WorkflowBuilder("c", 1).step("spin", "spin").step("next", "after").after("spin").build());
    auto id = executor.start("c");
    while (!started) std::this_thread::sleep_for(1ms);
    CHECK(executor.cancel(id));
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::cancelled);
    CHECK(run.cancel_requested);
    CHECK(counter.get("next") == 0);
    CHECK_FALSE(executor.cancel(id));   // already final
}

TEST_CASE("observers see each committed step, and what they throw is dropped", "[engine][executor]") {
    struct Throwing : Recorder {
        void on_run_started(const loom::RunId&, const std::string&) override {
            throw std::runtime_error("observer bug");
        }
    } observer;
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_math(handlers);
    handlers.add("talk", [](loom::StepContext& ctx) -> Json {
        ctx.log("hello from " + ctx.idempotency_key());
        return nullptr;
    });
    loom::Executor executor(store, handlers, {1, &observer});
    executor.add_workflow(hello());
    executor.add_workflow(loom::WorkflowBuilder("talk", 1).step("t", "talk").build());
    CHECK(executor.wait(executor.start("hello", {{"x", 0}})).status == loom::RunStatus::completed);
    auto talk = executor.start("talk");
    executor.wait(talk);
    std::lock_guard lock(observer.mutex);
    CHECK(observer.lines == std::vector<std::string>{
                                "step a completed", "step b completed", "step c completed",
                                "run completed", "log t hello from " + talk + "/t",
                                "step t completed", "run completed"});
}

TEST_CASE("recover resumes from the stored state: completed steps never run again", "[engine][executor]") {
    loom::test::TempDir dir;
    loom::SqliteStore store(dir.file("runs.db"));
    loom::HandlerRegistry handlers;
    RunCounter counter;
    handlers.add("add", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        return ctx.input<int>("x") + ctx.input<int>("y");
    });
    // An attempt in flight at a crash counts: b has a second one to use.
    loom::RetryPolicy twice;
    twice.max_attempts = 2;
    auto wf = loom::WorkflowBuilder("hello", 1)
                  .default_retry(twice)
                  .step("a", "add").input({{"x", "${input.x}"}, {"y", 1}})
                  .step("b", "add").input({{"x", "${steps.a.output}"}, {"y", 10}}).after("a")
                  .step("c", "add").input({{"x", "${steps.b.output}"}, {"y", 100}}).after("b")
                  .build();
    loom::RunId id;
    {
        // Simulate a crash after "a" committed while "b" was in flight.
        loom::Executor executor(store, handlers, {1});
        executor.add_workflow(wf);
        loom::RunInfo info;
        info.id = "crashed-run";
        info.workflow_name = "hello";
        info.workflow_version = 1;
        info.workflow_hash = wf.hash();
        info.input = {{"x", 5}};
        info.created_at = info.updated_at = std::chrono::time_point_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now());
        for (const char* s : {"a", "b", "c"}) {
            info.steps.emplace_back();
            info.steps.back().step_id = s;
        }
        info.steps[0].status = loom::StepStatus::completed;
        info.steps[0].attempts = 1;
        info.steps[0].output = 6;
        info.steps[1].status = loom::StepStatus::running;
        info.steps[1].attempts = 1;
        info.owner = "crashed-process";   // its lease long expired
        info.lease_until = loom::TimePoint{};
        loom::Batch batch;
        batch.new_runs.push_back(info);
        store.commit(batch);
        id = info.id;
        REQUIRE_THROWS_WITH(executor.wait(id),
                            "[loom.run.not_live] run crashed-run is unfinished but no executor runs "
                            "it now; call recover()");
    }
    loom::Executor executor(store, handlers, {2});
    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"c", 116}});
    CHECK(counter.get("a") == 0);
    CHECK(counter.get("b") == 1);
    CHECK(run.step("b")->attempts == 2);   // the crashed attempt counts
    CHECK(executor.recover().empty());
}

TEST_CASE("recover leaves a run whose handler it lacks to an executor that has it, and says so",
          "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    Gate gate;
    handlers.add("add", [&](loom::StepContext&) -> Json {
        gate.pass();
        return 1;
    });
    loom::RunId id;
    {
        loom::Executor executor(store, handlers, {1});
        executor.add_workflow(hello());
        id = executor.start("hello", {{"x", 1}});
        gate.wait_for_waiters(1);
        release_later(gate);
    }   // the executor stops while "a" runs: "a" commits, nothing else starts
    auto stored = store.load_run(id);
    REQUIRE(stored->status == loom::RunStatus::running);
    CHECK(stored->step("a")->status == loom::StepStatus::completed);
    CHECK(stored->step("b")->status == loom::StepStatus::ready);
    CHECK(stored->owner.empty());   // released when its executor stopped

    loom::HandlerRegistry empty;
    Recorder recorder;
    loom::ExecutorOptions options;
    options.threads = 1;
    options.observer = &recorder;
    {
        loom::Executor other(store, empty, options);
        CHECK(other.recover().empty());
    }
    CHECK(store.load_run(id)->status == loom::RunStatus::running);
    CHECK(store.load_run(id)->owner.empty());   // not claimed: free for another executor
    REQUIRE(recorder.lines.size() == 1);
    CHECK(recorder.lines[0] ==
          "log  recover: unfinished runs of workflow \"hello\" version 1 are left to other executors, as this "
          "one cannot run them: [loom.handler.unknown] workflow \"hello\" step \"a\" uses handler \"add\", "
          "which is not registered");

    loom::Executor able(store, handlers, {1});
    CHECK(able.recover() == std::vector<loom::RunId>{id});
    CHECK(able.wait(id).status == loom::RunStatus::completed);
}

TEST_CASE("a cancel requested for a run nobody runs ends it on recovery", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    add_math(handlers);
    Gate gate;
    handlers.add("hold", [&](loom::StepContext&) -> Json {
        gate.pass();
        return 1;
    });
    loom::RunId id;
    {
        loom::Executor executor(store, handlers, {1});
        executor.add_workflow(
            loom::WorkflowBuilder("held", 1).step("h", "hold").step("n", "hold").after("h").build());
        id = executor.start("held");
        gate.wait_for_waiters(1);
        release_later(gate);
    }
    loom::Executor other(store, handlers, {1});
    CHECK(other.cancel(id));
    CHECK(store.load_run(id)->cancel_requested);
    CHECK(other.recover() == std::vector<loom::RunId>{id});
    CHECK(other.wait(id).status == loom::RunStatus::cancelled);
}

TEST_CASE("a failed commit surfaces as StoreError and recover resumes the run", "[engine][executor]") {
    loom::MemoryStore memory;
    FlakyStore store(memory);
    loom::HandlerRegistry handlers;
    RunCounter counter;
    handlers.add("add", [&](loom::StepContext& ctx) -> Json {
        counter.hit(ctx.step_id());
        if (ctx.step_id() == "b" && counter.get("b") == 1) store.failing = true;
        return ctx.input<int>("x") + ctx.input<int>("y");
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(hello());
    auto id = executor.start("hello", {{"x", 1}});
    REQUIRE_THROWS_WITH(executor.wait(id), "[loom.store.io] injected fault");
    // Nothing after the failed commit is shown as done.
    auto stored = memory.load_run(id);
    CHECK(stored->status == loom::RunStatus::running);
    CHECK(stored->step("a")->status == loom::StepStatus::completed);
    CHECK(stored->step("b")->status != loom::StepStatus::completed);

    store.failing = false;
    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"c", 112}});
    CHECK(counter.get("a") == 1);
    CHECK(counter.get("b") == 2);   // its first result was never committed
    CHECK(counter.get("c") == 1);
}

TEST_CASE("a long attempt's start is recorded by the next commit", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    Gate gate;
    handlers.add("slow", [&](loom::StepContext&) -> Json {
        gate.pass();
        return "slow";
    });
    handlers.add("fast", [&](loom::StepContext&) -> Json {
        gate.wait_for_waiters(1);   // "slow" is running before this commits
        return "fast";
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(loom::WorkflowBuilder("mix", 1).step("slow", "slow").step("fast", "fast").build());
    auto id = executor.start("mix");
    // "fast" completing commits, and that commit records "slow" as running.
    for (int i = 0; i < 5000; ++i) {
        if (store.load_run(id)->step("fast")->status == loom::StepStatus::completed) break;
        std::this_thread::sleep_for(1ms);
    }
    auto mid = store.load_run(id);
    CHECK(mid->step("fast")->status == loom::StepStatus::completed);
    CHECK(mid->step("slow")->status == loom::StepStatus::running);
    CHECK(mid->step("slow")->attempts == 1);
    CHECK(mid->step("slow")->started_at.has_value());
    gate.release();
    CHECK(executor.wait(id).status == loom::RunStatus::completed);

    std::vector<std::string> slow_events;
    for (const auto& e : executor.history(id))
        if (e.step_id == "slow") slow_events.push_back(e.kind);
    CHECK(slow_events == std::vector<std::string>{loom::event::step_started, loom::event::step_completed});
}

namespace {
/// Slows every commit down so that transitions pile up behind it; the first
/// one waits until `hold` opens, so that work queues up behind it however
/// slowly the machine (or a sanitizer) starts the test's threads.
struct SlowStore : loom::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<int> commits{0};
    Gate hold;
    void commit(const loom::Batch& b) override {
        if (commits == 0) hold.pass();
        std::this_thread::sleep_for(2ms);
        StoreWrapper::commit(b);
        ++commits;
    }
};
}  // namespace

TEST_CASE("transitions of many steps and runs share a commit", "[engine][executor]") {
    const unsigned threads = GENERATE(1u, 2u, 4u);
    loom::MemoryStore memory;
    SlowStore store(memory);
    loom::HandlerRegistry handlers;
    handlers.add("noop", [](loom::StepContext&) -> Json { return nullptr; });
    loom::Executor executor(store, handlers, {threads});
    loom::WorkflowBuilder b("five", 1);
    for (int i = 0; i < 5; ++i) {
        b.step("s" + std::to_string(i), "noop");
        if (i > 0) b.after("s" + std::to_string(i - 1));
    }
    executor.add_workflow(b.build());
    const int runs = 20;
    std::vector<std::thread> clients;
    std::atomic<int> starting{0};
    std::atomic<int> completed{0};
    for (int c = 0; c < runs; ++c) {
        clients.emplace_back([&] {
            ++starting;
            if (executor.wait(executor.start("five")).status == loom::RunStatus::completed) ++completed;
        });
    }
    // Every client has begun start() while the first commit is held; a moment
    // more lets their starts queue behind it.
    REQUIRE(eventually([&] { return starting == runs; }));
    std::this_thread::sleep_for(50ms);
    store.hold.release();
    for (auto& t : clients) t.join();
    CHECK(completed == runs);
    // 20 starts + 100 step completions, in far fewer transactions.
    CHECK(store.commits < (runs + runs * 5) / 2);
}

TEST_CASE("bad executor options are refused", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::ExecutorOptions options;
    options.threads = 5000;
    REQUIRE_THROWS_WITH(loom::Executor(store, handlers, options),
                        "[loom.options.threads] ExecutorOptions::threads is 5000; at most 1024");
    options.threads = 1;
    options.limits.max_steps = 0;
    REQUIRE_THROWS_WITH(loom::Executor(store, handlers, options),
                        "[loom.options.limits] ExecutorOptions::limits must be positive (max_steps 0, "
                        "max_depth 64, max_bytes 1048576)");
}

TEST_CASE("a reference to a missing key fails the attempt that reads it", "[engine][executor]") {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    handlers.add("read", [](loom::StepContext& ctx) -> Json { return ctx.input(); });
    handlers.add("ignore", [](loom::StepContext&) -> Json { return "fine"; });
    loom::Executor executor(store, handlers, {1});
    executor.add_workflow(loom::WorkflowBuilder("refs", 1)
                              .step("reads", "read").input({{"u", "${input.user.name}"}})
                              .build());
    executor.add_workflow(loom::WorkflowBuilder("lazy", 1)
                              .step("ignores", "ignore").input({{"u", "${input.user.name}"}})
                              .build());
    auto run = executor.wait(executor.start("refs", {{"user", {{"id", 1}}}}));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"reads\" failed: [loom.input.missing] ${input.user.name}: no key "
                       "\"name\" in input.user");
    CHECK(executor.wait(executor.start("refs", {{"user", {{"name", "ada"}}}})).output ==
          Json{{"reads", {{"u", "ada"}}}});
    // Input is resolved when a handler first reads it: one that never does is not failed.
    CHECK(executor.wait(executor.start("lazy", {{"user", {{"id", 1}}}})).status ==
          loom::RunStatus::completed);
}

// A handler that fails on its own while the executor waits out the grace
// period failed: that is the step's failure, kept like any other (before,
// every failure after shutdown began was dropped and the attempt ran again).
TEST_CASE("a failure thrown within the shutdown grace is recorded", "[engine][operator][shutdown]") {
    std::atomic<bool> closing{false};
    std::atomic<int> calls{0};
    loom::test::Fixture<> f(loom::test::Storage::sqlite);
    f.handlers.add("doomed", [&](loom::StepContext& ctx) -> Json {
        ++calls;
        while (!closing) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(100ms);   // the destructor is waiting out the grace
        CHECK_FALSE(ctx.cancelled());
        throw loom::RetryableError("the disk is full");
    });
    loom::ExecutorOptions options;
    options.threads = 2;
    options.shutdown_grace = 10s;
    const auto id = f.open({loom::WorkflowBuilder("w", 1).step("a", "doomed").build()}, options).start("w");
    REQUIRE(loom::test::eventually([&] { return calls == 1; }));
    closing = true;
    f.close();
    const auto stored = *f.store().load_run(id);
    CHECK(stored.status == loom::RunStatus::failed);
    CHECK(stored.step("a")->status == loom::StepStatus::failed);
    CHECK(stored.step("a")->attempts == 1);
    CHECK(stored.step("a")->error.find("the disk is full") != std::string::npos);
    f.open().recover();
    CHECK(calls == 1);   // not run again
}

TEST_CASE("shutdown lets handlers finish, then cancels them after the grace period", "[engine][operator][shutdown]") {
    std::atomic<int> calls{0};
    std::atomic<bool> saw_cancel{false};
    loom::test::Fixture<> f(loom::test::Storage::sqlite);
    f.handlers.add("patient", [&](loom::StepContext& ctx) -> Json {
        if (++calls == 1) {
            while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
            saw_cancel = true;
            throw loom::RetryableError("interrupted by shutdown");   // not the step's failure
        }
        return "done";
    });
    loom::ExecutorOptions options;
    options.threads = 2;
    options.shutdown_grace = 100ms;
    const auto id = f.open({loom::WorkflowBuilder("w", 1).step("a", "patient").build()}, options).start("w");
    REQUIRE(loom::test::eventually([&] { return calls == 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    f.close();
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(saw_cancel);
    CHECK(took >= 100ms);   // the grace period was given
    CHECK(took < 5s);
    auto stored = *f.store().load_run(id);
    CHECK(stored.status == loom::RunStatus::running);   // not failed: recover() finishes it
    CHECK(stored.step("a")->status != loom::StepStatus::failed);
    auto& executor = f.open();
    executor.recover();
    CHECK(executor.wait(id).output == Json{{"a", "done"}});
}
