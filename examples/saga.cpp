// saga: a trip is booked step by step (flight, hotel, car), then the card is
// charged. The charge fails under on_error "compensate", so the run fails and
// the bookings are undone, latest first: car, hotel, flight. Every booking and
// every cancellation is committed to a SQLite file as it happens.
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace {

std::mutex journal_mutex;
std::vector<std::string> journal;   // guarded by journal_mutex: what the handlers did, in order

void note(const std::string& line) {
    std::lock_guard lock(journal_mutex);
    std::cout << line << "\n";
    journal.push_back(line);
}

}  // namespace

int main() {
    loom::HandlerRegistry handlers;
    // Each booking returns its reference; the undo receives that output as its input.
    handlers.add("book", [](loom::StepContext& ctx) -> loom::Json {
        const std::string ref = ctx.step_id() + "-" + ctx.input().at("who").get<std::string>();
        note("booked " + ref);
        return {{"ref", ref}};
    });
    handlers.add("cancel", [](loom::StepContext& ctx) -> loom::Json {
        note("cancelled " + ctx.input().at("ref").get<std::string>());
        return nullptr;
    });
    handlers.add("charge", [](loom::StepContext&) -> loom::Json {
        note("charge refused");
        throw loom::FatalError("card declined");   // no retry: undo at once
    });

    const loom::Json who = {{"who", "${input.traveller}"}};
    auto trip = loom::WorkflowBuilder("trip", 1)
        .step("flight", "book").input(who).compensate("cancel")
        .step("hotel", "book").input(who).compensate("cancel").after("flight")
        .step("car", "book").input(who).compensate("cancel").after("hotel")
        .step("charge", "charge").after("car").on_error(loom::OnError::compensate)
        .build();

    std::remove("saga.db");
    loom::SqliteStore store("saga.db");
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(trip);
    auto run = executor.wait(executor.start("trip", {{"traveller", "ada"}}));

    std::cout << "run " << loom::to_string(run.status) << ": " << run.error << "\n";
    for (const auto& step : run.steps)
        std::cout << "  " << step.step_id << ": " << loom::to_string(step.status) << "\n";

    // Bookings in order, the failed charge, then the undos in reverse order.
    const std::vector<std::string> expected = {
        "booked flight-ada", "booked hotel-ada", "booked car-ada", "charge refused",
        "cancelled car-ada", "cancelled hotel-ada", "cancelled flight-ada"};
    bool ok = run.status == loom::RunStatus::failed &&
              run.error == "step \"charge\" failed: card declined" &&
              run.step("charge")->status == loom::StepStatus::failed;
    for (const char* step : {"flight", "hotel", "car"})
        ok = ok && run.step(step)->status == loom::StepStatus::compensated;
    std::lock_guard lock(journal_mutex);
    return ok && journal == expected ? 0 : 1;
}
