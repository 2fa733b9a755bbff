// The approval example's workflow and handlers, shared with its test
// (tests/docs/examples_test.cpp): an expense is submitted, waits for a manager's
// "approval" signal (the built-in "wait" step, which holds no thread), and
// is paid to whoever the signal names.
#pragma once

#include <string>

#include <loom/loom.hpp>

#include "journal.hpp"

namespace example::expense {

inline loom::Workflow workflow() {
    return loom::WorkflowBuilder("expense", 1)
        .step("submit", "submit").input({{"amount", "${input.amount}"}})
        .step("approve", "wait").input({{"signal", "approval"}}).after("submit")
        .step("pay", "pay").input({{"by", "${steps.approve.output.by}"}}).after("approve")
        .build();
}

/// `journal` must outlive the handlers.
inline void add_handlers(loom::HandlerRegistry& handlers, Journal& journal) {
    handlers.add("submit", [&journal](loom::StepContext& ctx) -> loom::Json {
        journal.note("submitted " + ctx.input().dump());
        return ctx.input();
    });
    handlers.add("pay", [&journal](loom::StepContext& ctx) -> loom::Json {
        journal.note("paid, approved by " + ctx.input<std::string>("by"));
        return "paid";
    });
}

}  // namespace example::expense
