// Compensation (saga): when a step under on_error "compensate" fails, the
// completed steps are undone, latest first, durably.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using loom::Json;
using loom::StepStatus;
using loom::test::Fixture;

namespace {

/// Records the order in which handlers ran.
struct Journal {
    std::mutex mutex;
    std::vector<std::string> lines;
    void add(std::string line) {
        std::lock_guard lock(mutex);
        lines.push_back(std::move(line));
    }
    std::vector<std::string> get() {
        std::lock_guard lock(mutex);
        return lines;
    }
};

struct Trip : loom::test::Steps {
    Journal journal;
    Trip() {
        handlers.add("book", [this](loom::StepContext& ctx) -> Json {
            journal.add("book " + ctx.step_id());
            return {{"booking", ctx.step_id() + "-42"}};
        });
        handlers.add("cancel", [this](loom::StepContext& ctx) -> Json {
            journal.add("cancel " + ctx.step_id() + " " + ctx.input().dump());
            return nullptr;
        });
        handlers.add("charge", [this](loom::StepContext&) -> Json {
            journal.add("charge");
            throw loom::FatalError("card declined");
        });
    }
    static loom::Workflow workflow() {
        return loom::WorkflowBuilder("trip", 1)
            .default_on_error(loom::OnError::compensate)
            .step("flight", "book").compensate("cancel")
            .step("hotel", "book").after("flight")
                .compensate("cancel", Json{{"ref", "${steps.hotel.output.booking}"}, {"who", "${input.who}"}})
            .step("car", "book").after("flight")
            .step("charge", "charge").after({"hotel", "car"})
            .build();
    }
};

}  // namespace

TEST_CASE("a failed step undoes the completed ones, latest first", "[engine][saga]") {
    Fixture<Trip> trip;
    auto& executor = trip.open({Trip::workflow()});
    auto id = executor.start("trip", {{"who", "ada"}});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"charge\" failed: card declined");
    CHECK(run.step("flight")->status == StepStatus::compensated);
    CHECK(run.step("hotel")->status == StepStatus::compensated);
    CHECK(run.step("car")->status == StepStatus::completed);   // nothing to undo
    CHECK(run.step("charge")->status == StepStatus::failed);
    CHECK(run.step("flight")->output == Json{{"booking", "flight-42"}});   // kept
    auto lines = trip.journal.get();
    REQUIRE(lines.size() == 6);
    // The hotel, downstream of the flight, is cancelled first; a compensation
    // without input receives the step's output.
    CHECK(lines[4] == "cancel hotel {\"ref\":\"hotel-42\",\"who\":\"ada\"}");
    CHECK(lines[5] == "cancel flight {\"booking\":\"flight-42\"}");
    std::vector<std::string> undo;
    for (const auto& e : executor.history(id))
        if (e.kind.rfind("step.compensat", 0) == 0) undo.push_back(e.kind + " " + e.step_id);
    CHECK(undo == std::vector<std::string>{"step.compensating hotel", "step.compensated hotel",
                                           "step.compensating flight", "step.compensated flight"});
}

TEST_CASE("a compensation knows it compensates and has its own idempotency key", "[engine][saga]") {
    Fixture<Trip> trip;
    // A payment API de-duplicates by key: the refund must not share the charge's.
    auto seen = [&trip](loom::StepContext& ctx) -> Json {
        trip.journal.add(ctx.step_id() + (ctx.compensating() ? " undo " : " do ") + ctx.idempotency_key());
        return nullptr;
    };
    trip.handlers.add("book", seen);
    trip.handlers.add("cancel", seen);
    auto& executor = trip.open({Trip::workflow()});
    auto id = executor.start("trip", {{"who", "ada"}});
    CHECK(executor.wait(id).step("flight")->status == StepStatus::compensated);
    std::vector<std::string> flight;
    for (const auto& line : trip.journal.get())
        if (line.rfind("flight ", 0) == 0) flight.push_back(line);
    CHECK(flight == std::vector<std::string>{"flight do " + id + "/flight",
                                             "flight undo " + id + "/flight/compensate"});
}

TEST_CASE("an undo whose input lacks a key fails at once, naming the compensation", "[engine][saga]") {
    int tries = 0;
    Fixture<Trip> trip;
    trip.handlers.add("cancel", [&tries](loom::StepContext& ctx) -> Json {
        ++tries;
        return ctx.input<std::string>("ref");   // the flight's output has "booking"
    });
    auto& executor = trip.open({loom::WorkflowBuilder("w", 1)
                                    .step("flight", "book").compensate("cancel")
                                    .retry(loom::test::quick_retry(3))
                                    .step("charge", "charge").after("flight").on_error(loom::OnError::compensate)
                                    .build()},
                               {1});
    auto id = executor.start("w");
    auto run = executor.wait(id);
    CHECK(tries == 1);
    CHECK(run.step("flight")->error == "compensation failed: [loom.input.missing] run " + id +
                                           ", step \"flight\", compensation: no key \"ref\" in the input");
}

TEST_CASE("only a step under on_error compensate triggers the undo", "[engine][saga]") {
    Fixture<Trip> trip;
    auto& executor = trip.open({loom::WorkflowBuilder("plain", 1)
                                    .step("flight", "book").compensate("cancel")
                                    .step("charge", "charge").after("flight")
                                    .build()});
    auto run = executor.wait(executor.start("plain"));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("flight")->status == StepStatus::completed);
    for (const auto& line : trip.journal.get()) CHECK(line.rfind("cancel", 0) != 0);
}

TEST_CASE("an undo that fails is retried, and one that fails for good is reported", "[engine][saga]") {
    int tries = 0;
    Fixture<Trip> trip;
    trip.handlers.add("cancel_flaky", [&](loom::StepContext&) -> Json {
        if (++tries < 2) throw std::runtime_error("busy");
        return nullptr;
    });
    trip.handlers.add("cancel_broken", [](loom::StepContext&) -> Json { throw loom::FatalError("gone"); });
    auto& executor = trip.open({loom::WorkflowBuilder("w", 1)
                                    .step("a", "book").compensate("cancel_flaky")
                                    .retry(loom::test::quick_retry(2))
                                    .step("b", "book").compensate("cancel_broken").after("a")
                                    .step("charge", "charge").after("b").on_error(loom::OnError::compensate)
                                    .build()},
                               {1});
    auto run = executor.wait(executor.start("w"));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.error == "step \"charge\" failed: card declined; compensation failed for step(s) b");
    CHECK(run.step("b")->status == StepStatus::failed);
    CHECK(run.step("b")->error == "compensation failed: gone");
    CHECK(run.step("a")->status == StepStatus::compensated);   // the rest is still undone
    CHECK(tries == 2);
}

TEST_CASE("a compensation handler that is not registered is refused at start", "[engine][saga]") {
    Fixture<> f;
    f.handlers.add("book", [](loom::StepContext&) -> Json { return 1; });
    auto& executor = f.open({loom::WorkflowBuilder("w", 1).step("a", "book").compensate("unbook").build()}, {1});
    CHECK_THROWS_WITH(executor.start("w"),
                      "[loom.handler.unknown] workflow \"w\" step \"a\" uses compensation handler "
                      "\"unbook\", which is not registered");
    CHECK(executor.list_runs().empty());
}

TEST_CASE("a saga interrupted by a restart finishes: no step is undone twice", "[engine][saga][sqlite]") {
    loom::test::RunCounter undone;
    Fixture<Trip> trip(loom::test::Storage::sqlite);
    trip.handlers.add("cancel_slow", [&](loom::StepContext& ctx) -> Json {
        undone.hit(ctx.step_id());
        if (ctx.step_id() == "hotel") trip.gate.pass();   // the restart comes here
        return nullptr;
    });
    const auto wf = loom::WorkflowBuilder("trip", 1)
                        .step("flight", "book").compensate("cancel_slow")
                        .step("hotel", "book").compensate("cancel_slow").after("flight")
                        .step("charge", "charge").after("hotel").on_error(loom::OnError::compensate)
                        .build();
    loom::ExecutorOptions options;
    options.threads = 1;
    options.shutdown_grace = std::chrono::milliseconds(0);
    const auto id = trip.open({wf}, options).start("trip");
    trip.gate.wait_for_waiters(1);
    loom::test::release_later(trip.gate);
    trip.close();   // stops during the hotel's undo: it is recorded, the flight's is left due
    {
        auto stored = *trip.store().load_run(id);
        CHECK(stored.status == loom::RunStatus::running);
        CHECK(stored.step("hotel")->status == StepStatus::compensated);
        CHECK(stored.step("flight")->status == StepStatus::compensating);
        CHECK(undone.get("flight") == 0);
    }
    auto& executor = trip.open();
    executor.recover();
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("flight")->status == StepStatus::compensated);
    CHECK(run.step("hotel")->status == StepStatus::compensated);
    CHECK(undone.get("hotel") == 1);
    CHECK(undone.get("flight") == 1);
}
