// saga: the trip of trip.hpp, run on a SQLite file. The charge fails, so the
// bookings are undone, latest first: car, hotel, flight. Every booking and
// every cancellation is committed to the file as it happens.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "trip.hpp"

int main() {
    example::Journal journal;
    loom::HandlerRegistry handlers;
    example::trip::add_handlers(handlers, journal);

    std::remove("saga.db");
    loom::SqliteStore store("saga.db");
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(example::trip::workflow());
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
    return ok && journal.lines() == expected ? 0 : 1;
}
