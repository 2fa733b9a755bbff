// Start options: idempotency keys make start() safe to retry.
#include <catch2/catch.hpp>

#include <thread>

#include <loom/loom.hpp>

#include "support/fixture.hpp"

using loom::Json;
using loom::test::Fixture;

namespace {

/// "count" counts its calls by run.
struct Counting : loom::test::Steps {
    Counting() {
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

TEST_CASE("a start with a used idempotency key returns the first run", "[engine][executor][start]") {
    Fixture<Counting> f;
    auto& executor = f.open({Counting::one("w")});
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

TEST_CASE("reusing an idempotency key with another input or workflow is refused", "[engine][executor][start]") {
    Fixture<Counting> f;
    auto& executor = f.open({Counting::one("w"), Counting::one("v")});
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

TEST_CASE("concurrent starts with one key start one run", "[engine][executor][start]") {
    Fixture<Counting> f;
    auto& executor = f.open({Counting::one("w")});
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

TEST_CASE("an idempotency key holds across executors sharing a store", "[engine][executor][start][sqlite]") {
    Fixture<Counting> f(loom::test::Storage::sqlite);
    auto& a = f.open({Counting::one("w")});
    loom::SqliteStore store_b(f.db());   // its own connections, as another process's
    loom::Executor b(store_b, f.handlers, {2});
    b.add_workflow(Counting::one("w"));
    auto id = a.start("w", {{"x", 1}}, keyed("shared"));
    CHECK(b.start("w", {{"x", 1}}, keyed("shared")) == id);
    CHECK(a.wait(id).status == loom::RunStatus::completed);
    CHECK(f.counter.get(id) == 1);
}
