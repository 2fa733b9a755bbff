// The saga example's workflow and handlers, shared with its test
// (tests/docs/examples_test.cpp): a trip is booked step by step (flight, hotel,
// car), then the card is charged. The charge fails under on_error
// "compensate", so the run fails and the bookings are undone, latest first.
#pragma once

#include <string>

#include <loom/loom.hpp>

#include "journal.hpp"

namespace example::trip {

inline loom::Workflow workflow() {
    const loom::Json who = {{"who", "${input.traveller}"}};
    return loom::WorkflowBuilder("trip", 1)
        .step("flight", "book").input(who).compensate("cancel")
        .step("hotel", "book").input(who).compensate("cancel").after("flight")
        .step("car", "book").input(who).compensate("cancel").after("hotel")
        .step("charge", "charge").after("car").on_error(loom::OnError::compensate)
        .build();
}

/// `journal` must outlive the handlers.
inline void add_handlers(loom::HandlerRegistry& handlers, Journal& journal) {
    // Each booking returns its reference; the undo receives that output as its input.
    handlers.add("book", [&journal](loom::StepContext& ctx) -> loom::Json {
        const std::string ref = ctx.step_id() + "-" + ctx.input<std::string>("who");
        journal.note("booked " + ref);
        return {{"ref", ref}};
    });
    handlers.add("cancel", [&journal](loom::StepContext& ctx) -> loom::Json {
        journal.note("cancelled " + ctx.input<std::string>("ref"));
        return nullptr;
    });
    handlers.add("charge", [&journal](loom::StepContext&) -> loom::Json {
        journal.note("charge refused");
        throw loom::FatalError("card declined");   // no retry: undo at once
    });
}

}  // namespace example::trip
