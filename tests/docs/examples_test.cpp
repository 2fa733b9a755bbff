// The examples' workflows and handlers (examples/*.hpp), tested with the
// testing kit as a host would test its own: WorkflowHarness on a fake clock,
// with mocks, and a crash at every commit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <mutex>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "expense.hpp"
#include "thumbnails.hpp"
#include "trip.hpp"

using loom::Json;
using loom::testing::CrashTrial;
using loom::testing::WorkflowHarness;

TEST_CASE("trip: a declined charge undoes the bookings, latest first, whatever commit a crash hits",
          "[docs][examples]") {
    example::Journal journal;
    journal.quiet();
    loom::HandlerRegistry handlers;
    example::trip::add_handlers(handlers, journal);
    WorkflowHarness h(example::trip::workflow(), handlers);
    const Json input = {{"traveller", "ada"}};

    auto run = h.run(input);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"charge\" failed: card declined");
    for (const char* step : {"flight", "hotel", "car"})
        CHECK(run.step(step)->status == loom::StepStatus::compensated);
    CHECK(journal.lines() == std::vector<std::string>{"booked flight-ada", "booked hotel-ada", "booked car-ada",
                                                      "charge refused", "cancelled car-ada",
                                                      "cancelled hotel-ada", "cancelled flight-ada"});

    // A charge that goes through: nothing is undone.
    h.mock("charge", Json{{"paid", true}});
    CHECK(h.run(input).status == loom::RunStatus::completed);
    h.mock("charge", [](loom::StepContext&) -> Json { throw loom::FatalError("card declined"); });

    int mid_undo = 0;   // trials that crashed with some bookings undone, not all
    h.check_every_crash_point(input, [&](const CrashTrial& t) {
        CHECK(t.run.status == loom::RunStatus::failed);
        if (t.at_crash) {
            int undone = 0;
            for (const auto& s : t.at_crash->steps) undone += s.status == loom::StepStatus::compensated;
            mid_undo += undone > 0 && undone < 3;
        }
        CHECK(t.run.error == t.clean.error);
        for (const char* step : {"flight", "hotel", "car"}) {
            CHECK(t.run.step(step)->status == loom::StepStatus::compensated);
            // A booking committed before the crash is not booked again.
            if (t.at_crash && t.at_crash->step(step)->status == loom::StepStatus::completed)
                CHECK(t.calls_after.at(step) == 0);
        }
    });
    CHECK(mid_undo >= 1);
}

TEST_CASE("expense: payment waits for the approval signal, also across a crash after it is recorded",
          "[docs][examples]") {
    example::Journal journal;
    journal.quiet();
    loom::HandlerRegistry handlers;
    example::expense::add_handlers(handlers, journal);
    WorkflowHarness h(example::expense::workflow(), handlers);

    auto id = h.start({{"amount", 120}});
    h.advance(std::chrono::hours(24));   // quiet: the run waits, holding no thread
    CHECK(h.store().load_run(id)->step("approve")->status == loom::StepStatus::suspended);
    CHECK(h.calls("pay") == 0);
    h.executor().signal(id, "approval", {{"by", "grace"}});
    auto run = h.settle(id);
    CHECK(run.output == Json{{"pay", "paid"}});

    // A crash as the signal is recorded: signal() throws, and the host sends it again.
    id = h.start({{"amount", 7}});
    h.advance(std::chrono::seconds(1));
    h.crash_at(1);
    CHECK_THROWS_AS(h.executor().signal(id, "approval", {{"by", "lin"}}), loom::StoreError);
    h.recover();
    h.executor().signal(id, "approval", {{"by", "lin"}});
    run = h.settle(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("approve")->output == Json{{"by", "lin"}});
    CHECK(h.calls(id, "submit") == 1);
    CHECK(h.calls(id, "pay") == 1);

    // A crash once it is recorded: the signal is not lost. ("pay", if it was
    // in flight at the crash, runs again: at least once; a real payment
    // handler de-duplicates with ctx.idempotency_key().)
    id = h.start({{"amount", 9}});
    h.advance(std::chrono::seconds(1));
    h.crash_at(2);
    h.executor().signal(id, "approval", {{"by", "max"}});
    h.recover();
    run = h.settle(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.step("approve")->output == Json{{"by", "max"}});
    CHECK(h.calls(id, "pay") >= 1);
}

TEST_CASE("thumbnails: each image is resized on its own, retried on its own, and never again once committed",
          "[docs][examples]") {
    example::thumbnails::Service service;
    service.journal.quiet();
    loom::HandlerRegistry handlers;
    example::thumbnails::add_handlers(handlers, service);
    WorkflowHarness h(example::thumbnails::workflow(), handlers);
    const Json input = {{"album", "a"}, {"width", 64}};

    // Successful resizes per (run, element), through a mock that calls the real handler.
    std::mutex mutex;
    std::map<std::pair<loom::RunId, std::uint32_t>, int> resized;
    auto real = handlers.find("resize");
    h.mock("resize", [&](loom::StepContext& ctx) -> Json {
        Json thumb = real->run(ctx);
        std::lock_guard lock(mutex);
        ++resized[{ctx.run_id(), *ctx.item_index()}];
        return thumb;
    });
    h.fail("resize", 1, "image service busy");   // every element's first attempt

    auto run = h.run(input);
    REQUIRE(run.status == loom::RunStatus::completed);
    CHECK(run.step("resize")->output.size() == 7);
    CHECK(run.step("resize")->output.at(0) == "a/beach_64.jpg");
    CHECK(run.step("resize")->output.at(6) == "a/sunset_64.jpg");
    CHECK(run.step("resize")->attempts == 14);
    CHECK(run.output == Json{{"publish", 7}});

    int mid_fan_out = 0;   // trials that crashed with some elements committed, not all
    h.check_every_crash_point(input, [&](const CrashTrial& t) {
        REQUIRE(t.run.status == loom::RunStatus::completed);
        CHECK(t.run.output == t.clean.output);
        CHECK(t.run.step("resize")->output == t.clean.step("resize")->output);
        if (!t.at_crash) return;
        const auto& items = t.at_crash->step("resize")->items;
        const auto done = std::count_if(items.begin(), items.end(), [](const loom::ItemInfo& i) {
            return i.status == loom::StepStatus::completed;
        });
        mid_fan_out += done > 0 && done < 7;
        std::lock_guard lock(mutex);
        for (const auto& item : items) {
            if (item.status != loom::StepStatus::completed) continue;
            INFO("crash at commit " << t.crash_at << ", element " << item.index);
            CHECK(resized[{t.run.id, item.index}] == 1);   // committed: never resized again
        }
    });
    CHECK(mid_fan_out >= 3);
}
