// Sub-workflows: a "workflow:NAME" step runs a child run and finishes with it.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using loom::Json;
using loom::StepStatus;
using loom::test::Fixture;

namespace {

struct Shop : loom::test::Steps {
    bool hold = false;   // the receipt step waits at the gate
    Shop() {
        handlers.add("charge", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            if (ctx.input_or("amount", 0) < 0) throw loom::FatalError("negative amount");
            return {{"charged", ctx.input<Json>("amount")}};
        });
        handlers.add("receipt", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            if (hold) gate.pass();
            return {{"receipt", ctx.input<Json>("/charge/charged"_json_pointer)}};
        });
        handlers.add("mark", [this](loom::StepContext& ctx) -> Json {
            counter.hit(ctx.step_id());
            return ctx.input();
        });
    }
    static loom::Workflow payment() {
        return loom::WorkflowBuilder("payment", 1)
            .step("charge", "charge").input({{"amount", "${input.amount}"}})
            .step("receipt", "receipt").after("charge")
            .build();
    }
    static loom::Workflow order() {
        return loom::WorkflowBuilder("order", 1)
            .step("reserve", "mark")
            .step("pay", "workflow:payment").input({{"amount", "${input.amount}"}}).after("reserve")
            .step("ship", "mark").input({{"paid", "${steps.pay.output.receipt}"}}).after("pay")
            .build();
    }
};

}  // namespace

TEST_CASE("a sub-workflow step completes with its child run's output", "[engine][children]") {
    Fixture<Shop> shop;
    auto& executor = shop.open({Shop::payment(), Shop::order()});
    auto id = executor.start("order", {{"amount", 30}});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("pay")->output == Json{{"receipt", {{"receipt", 30}}}});
    CHECK(run.output == Json{{"ship", {{"paid", {{"receipt", 30}}}}}});
    auto child = executor.get_run(id + ".pay");   // linked by id
    CHECK(child.workflow_name == "payment");
    CHECK(child.input == Json{{"amount", 30}});
    CHECK(child.status == loom::RunStatus::completed);
}

TEST_CASE("a failed child run fails its step", "[engine][children]") {
    Fixture<Shop> shop;
    auto& executor = shop.open({Shop::payment(), Shop::order()});
    auto id = executor.start("order", {{"amount", -1}});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("pay")->error ==
          "child run " + id + ".pay failed: step \"charge\" failed: negative amount");
    CHECK(run.step("ship")->status == StepStatus::cancelled);
}

TEST_CASE("cancelling the parent cancels the child", "[engine][children]") {
    Fixture<Shop> shop;
    shop.hold = true;
    auto& executor = shop.open({Shop::payment(), Shop::order()});
    auto id = executor.start("order", {{"amount", 5}});
    shop.gate.wait_for_waiters(1);   // the child's receipt step is in flight
    CHECK(executor.cancel(id));
    shop.gate.release();
    CHECK(executor.wait(id).status == loom::RunStatus::cancelled);
    auto child = executor.wait(id + ".pay");
    CHECK(child.status == loom::RunStatus::cancelled);
    CHECK(child.cancel_requested);
}

TEST_CASE("a sub-workflow of an unknown workflow is refused at start", "[engine][children]") {
    Fixture<Shop> shop;
    auto& executor = shop.open({Shop::order()});
    CHECK_THROWS_WITH(executor.start("order", {{"amount", 1}}),
                      "[loom.workflow.unknown] workflow \"order\" step \"pay\" runs workflow \"payment\", "
                      "which is not registered");
    CHECK(executor.list_runs().empty());
}

TEST_CASE("a workflow that runs itself stops at the nesting limit", "[engine][children]") {
    Fixture<Shop> shop;
    auto& executor = shop.open({loom::WorkflowBuilder("again", 1).step("again", "workflow:again").build()});
    auto id = executor.start("again");
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    std::string deepest = id;
    for (int i = 0; i < 8; ++i) deepest += ".again";
    CHECK(executor.get_run(deepest).step("again")->error ==
          "[loom.workflow.depth] a child run would be nested 9 deep; at most 8");
}

TEST_CASE("parent and child both resume after a restart, and nothing runs twice", "[engine][children][sqlite]") {
    Fixture<Shop> shop(loom::test::Storage::sqlite);
    shop.hold = true;
    const auto id = shop.open({Shop::payment(), Shop::order()}).start("order", {{"amount", 7}});
    shop.gate.wait_for_waiters(1);
    loom::test::release_later(shop.gate);
    auto& executor = shop.reopen();
    executor.recover();
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"ship", {{"paid", {{"receipt", 7}}}}}});
    CHECK(executor.get_run(id + ".pay").status == loom::RunStatus::completed);
    for (const char* step : {"reserve", "charge", "receipt", "ship"}) CHECK(shop.counter.get(step) == 1);
}

TEST_CASE("a child run has its parent's priority", "[engine][children][control]") {
    const int priority = GENERATE(-3, 7);
    Fixture<Shop> shop;
    auto& executor = shop.open({Shop::payment(), Shop::order()});
    loom::StartOptions options;
    options.priority = priority;
    auto id = executor.start("order", {{"amount", 4}}, options);
    REQUIRE(executor.wait(id).status == loom::RunStatus::completed);
    CHECK(executor.get_run(id).priority == priority);
    auto child = executor.get_run(id + ".pay");
    CHECK(child.workflow_name == "payment");
    CHECK(child.priority == priority);
}

// A parent that fails (not by cancel()) while its child run is still running
// cancels the child, as cancel() does: nothing is left running for a run that
// is over. The child's step returns once it sees ctx.cancelled(), or after 2 s.
TEST_CASE("a parent that fails cancels its running child", "[engine][children]") {
    std::atomic<bool> awaiting{false}, saw_cancel{false};
    Fixture<Shop> shop;
    shop.handlers.add("await", [&](loom::StepContext& ctx) -> Json {
        awaiting = true;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (!ctx.cancelled() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        saw_cancel = ctx.cancelled();
        return "paid";
    });
    shop.handlers.add("boom", [&](loom::StepContext&) -> Json {
        (void)loom::test::eventually([&] { return awaiting.load(); });   // the child's step is in flight
        throw loom::FatalError("out of stock");
    });
    auto& executor = shop.open({loom::WorkflowBuilder("slow_payment", 1).step("await", "await").build(),
                                loom::WorkflowBuilder("order", 1)
                                    .step("pay", "workflow:slow_payment")
                                    .step("stock", "boom")   // beside pay, under on_error "fail"
                                    .build()},
                               {3});
    const auto id = executor.start("order");
    const auto parent = executor.wait(id);
    CHECK(parent.status == loom::RunStatus::failed);
    CHECK_THAT(parent.error, Catch::Contains("out of stock"));
    const auto child = executor.wait(id + ".pay");
    INFO("the child run ended " << loom::to_string(child.status));
    CHECK(saw_cancel);
    CHECK(child.cancel_requested);
    CHECK(child.status == loom::RunStatus::cancelled);
}

// The crash came after the parent's failure was committed and before its
// child was cancelled: recover() finishes the parent's stop, and the child,
// recovered too, is cancelled rather than run on for a run that is over.
TEST_CASE("a parent recovered stopped cancels the child it left running", "[engine][children][sqlite]") {
    std::atomic<bool> first_process{true}, saw_cancel{false};
    Fixture<Shop> shop(loom::test::Storage::sqlite);
    shop.handlers.add("await", [&](loom::StepContext& ctx) -> Json {
        if (first_process) shop.gate.pass();
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (!ctx.cancelled() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (first_process) throw loom::RetryableError("shut down");   // not recorded: runs again
        saw_cancel = ctx.cancelled();
        return "paid";
    });
    shop.handlers.add("stock", [&](loom::StepContext& ctx) -> Json {
        while (!ctx.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        throw loom::RetryableError("shut down");
    });
    loom::ExecutorOptions quick{3};
    quick.shutdown_grace = std::chrono::milliseconds(0);
    auto& first = shop.open({loom::WorkflowBuilder("slow_payment", 1).step("await", "await").build(),
                             loom::WorkflowBuilder("order", 1)
                                 .step("pay", "workflow:slow_payment")
                                 .step("stock", "stock")   // beside pay, under on_error "fail"
                                 .build()},
                            quick);
    const auto id = first.start("order");
    shop.gate.wait_for_waiters(1);   // the child's step is in flight
    loom::test::release_later(shop.gate);
    shop.close();
    first_process = false;
    {
        // What the dead process committed last: stock failed; nothing told the child.
        loom::SqliteStore store(shop.db());
        REQUIRE(store.load_run(id + ".pay"));
        const auto at = std::chrono::system_clock::now();
        loom::Batch batch;
        batch.steps.push_back(loom::StepWrite{id, "stock", StepStatus::failed, 1, {}, "out of stock", at, at, std::nullopt, false, 0});
        store.commit(batch);
    }
    auto& executor = shop.reopen(quick);
    const auto resumed = executor.recover();
    CHECK(resumed.size() == 2);
    const auto parent = executor.wait(id);
    CHECK(parent.status == loom::RunStatus::failed);
    CHECK_THAT(parent.error, Catch::Contains("out of stock"));
    const auto child = executor.wait(id + ".pay");
    INFO("the child run ended " << loom::to_string(child.status));
    CHECK(child.cancel_requested);
    CHECK(child.status == loom::RunStatus::cancelled);
    // If it ran again (an attempt that counts: shutdown's cancelled one does
    // not), it was told at once.
    const auto& await = *child.step("await");
    if (await.attempts > await.attempt_base) CHECK(saw_cancel);
}

TEST_CASE("check() and start() find a sub-workflow's missing handler before anything is stored",
          "[engine][children]") {
    Fixture<Shop> shop;
    auto& executor = shop.open();
    // A parent may be added before its child, and before handlers are registered.
    executor.add_workflow(Shop::order());
    CHECK_THROWS_WITH(executor.check(Shop::order()),
                      "[loom.workflow.unknown] workflow \"order\" step \"pay\" runs workflow \"payment\", "
                      "which is not registered");
    executor.add_workflow(loom::WorkflowBuilder("payment", 1)
                              .step("charge", "charge").input({{"amount", "${input.amount}"}})
                              .step("receipt", "mail").compensate("unmail").after("charge")
                              .build());
    const std::string missing =
        "[loom.handler.unknown] workflow \"order\" step \"pay\" runs workflow \"payment\": workflow "
        "\"payment\" step \"receipt\" uses handler \"mail\", which is not registered";
    CHECK_THROWS_WITH(executor.check(Shop::order()), missing);
    CHECK_THROWS_WITH(executor.start("order", {{"amount", 1}}), missing);
    CHECK(executor.list_runs().empty());

    shop.handlers.add("mail", [](loom::StepContext&) -> Json { return nullptr; });
    CHECK_THROWS_WITH(executor.check(Shop::order()),
                      "[loom.handler.unknown] workflow \"order\" step \"pay\" runs workflow \"payment\": "
                      "workflow \"payment\" step \"receipt\" uses compensation handler \"unmail\", which is "
                      "not registered");
    shop.handlers.add("unmail", [](loom::StepContext&) -> Json { return nullptr; });
    executor.check(Shop::order());
    CHECK(executor.wait(executor.start("order", {{"amount", 1}})).status == loom::RunStatus::completed);
}

TEST_CASE("check() of a workflow that runs itself ends", "[engine][children]") {
    Fixture<Shop> shop;
    auto again = loom::WorkflowBuilder("again", 1).step("again", "workflow:again").step("m", "mark").build();
    auto& executor = shop.open({again});
    executor.check(again);
}

TEST_CASE("replace_workflow() changes a version's content while no unfinished run uses it",
          "[engine][children][model]") {
    Fixture<Shop> shop(loom::test::Storage::sqlite);
    auto& executor = shop.open();
    auto typo = loom::WorkflowBuilder("pay", 1).step("charge", "chrage").input({{"amount", 1}}).build();
    auto fixed = loom::WorkflowBuilder("pay", 1).step("charge", "charge").input({{"amount", 1}}).build();
    executor.add_workflow(typo);
    CHECK_THROWS_AS(executor.add_workflow(fixed), loom::Conflict);   // add_workflow keeps its promise
    executor.replace_workflow(fixed);
    CHECK(shop.store().load_workflow("pay", 1)->hash == fixed.hash());
    auto first = executor.start("pay");
    CHECK(executor.wait(first).status == loom::RunStatus::completed);   // finished: may be replaced

    shop.hold = true;
    auto held = loom::WorkflowBuilder("pay", 1).step("charge", "receipt").input({{"charge", {{"charged", 2}}}}).build();
    executor.replace_workflow(held);
    auto running = executor.start("pay");
    shop.gate.wait_for_waiters(1);
    CHECK_THROWS_WITH(executor.replace_workflow(fixed),
                      "[loom.workflow.in_use] workflow pay version 1 cannot be replaced: unfinished run " +
                          running + " uses it (let it finish or cancel it, or give changed content a new "
                                    "version)");
    CHECK(shop.store().load_workflow("pay", 1)->hash == held.hash());   // unchanged
    shop.gate.release();
    CHECK(executor.wait(running).status == loom::RunStatus::completed);
    executor.replace_workflow(fixed);
    CHECK(shop.store().load_workflow("pay", 1)->hash == fixed.hash());
}
