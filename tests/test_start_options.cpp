// Start options: idempotency keys make start() safe to retry.
#include <catch2/catch.hpp>

#include <thread>

#include <loom/loom.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

using loom::Json;

namespace {

struct Fixture {
    loom::HandlerRegistry handlers;
    loom::test::RunCounter counter;
    Fixture() {
        handlers.add("count", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.run_id());
            return ctx.input();
        });
    }
    static loom::Workflow one(const char* name) {
        return loom::WorkflowBuilder(name, 1).step("a", "count").input({{"x", "${input.x}"}}).build();
    }
};

loom::StartOptions keyed(std::string key) {
    loom::StartOptions o;
    o.idempotency_key = std::move(key);
    return o;
}

}  // namespace

TEST_CASE("a start with a used idempotency key returns the first run", "[executor][start]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(Fixture::one("w"));
    auto first = executor.start("w", {{"x", 1}}, keyed("order-17"));
    auto again = executor.start("w", {{"x", 1}}, keyed("order-17"));
    CHECK(again == first);
    executor.wait(first);
    CHECK(executor.start("w", {{"x", 1}}, keyed("order-17")) == first);   // also once it is over
    CHECK(f.counter.get(first) == 1);
    CHECK(executor.get_run(first).idempotency_key == "order-17");
    CHECK(executor.list_runs().size() == 1);
    // No key, or another key: a new run each time.
    CHECK(executor.start("w", {{"x", 1}}) != first);
    CHECK(executor.start("w", {{"x", 1}}, keyed("order-18")) != first);
}

TEST_CASE("reusing an idempotency key with another input or workflow is refused", "[executor][start]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(Fixture::one("w"));
    executor.add_workflow(Fixture::one("v"));
    auto first = executor.start("w", {{"x", 1}}, keyed("k"));
    const auto runs = executor.list_runs().size();
    try {
        executor.start("w", {{"x", 2}}, keyed("k"));
        FAIL("no Conflict");
    } catch (const loom::Conflict& e) {
        CHECK(std::string(e.what()) ==
              "[loom.run.key_reused] idempotency key \"k\" started run " + first +
                  " of workflow \"w\" with input {\"x\":1}; this start asks for workflow \"w\" with "
                  "input {\"x\":2}");
    }
    CHECK_THROWS_AS(executor.start("v", {{"x", 1}}, keyed("k")), loom::Conflict);
    CHECK(executor.list_runs().size() == runs);
}

TEST_CASE("concurrent starts with one key start one run", "[executor][start]") {
    Fixture f;
    loom::MemoryStore store;
    loom::Executor executor(store, f.handlers, {2});
    executor.add_workflow(Fixture::one("w"));
    std::vector<loom::RunId> ids(8);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ids.size(); ++i)
        threads.emplace_back([&, i] { ids[i] = executor.start("w", {{"x", 1}}, keyed("same")); });
    for (auto& t : threads) t.join();
    for (const auto& id : ids) CHECK(id == ids[0]);
    executor.wait(ids[0]);
    CHECK(f.counter.get(ids[0]) == 1);
    CHECK(executor.list_runs().size() == 1);
}

TEST_CASE("an idempotency key holds across executors sharing a store", "[executor][start][sqlite]") {
    loom::test::TempDir dir;
    Fixture f;
    loom::SqliteStore store_a(dir.file("runs.db"));
    loom::SqliteStore store_b(dir.file("runs.db"));
    loom::Executor a(store_a, f.handlers, {2});
    loom::Executor b(store_b, f.handlers, {2});
    a.add_workflow(Fixture::one("w"));
    b.add_workflow(Fixture::one("w"));
    auto id = a.start("w", {{"x", 1}}, keyed("shared"));
    CHECK(b.start("w", {{"x", 1}}, keyed("shared")) == id);
    CHECK(a.wait(id).status == loom::RunStatus::completed);
    CHECK(f.counter.get(id) == 1);
}
