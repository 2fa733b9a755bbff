// Calling a handler and classifying what it throws: one place, shared by the
// executor and testing::StepHarness, so a unit test of a step sees exactly
// what the executor would make of it. Internal.
#pragma once

#include <string>
#include <utility>

#include <loom/handler.hpp>
#include <loom/json.hpp>

namespace loom::detail {

/// The one way to make a StepContext (its constructor is private: hosts are
/// handed one, they never make one).
struct ContextAccess {
    static StepContext make(StepContextParams params) { return StepContext(std::move(params)); }
};

struct Invocation {
    enum class Kind { ok, retryable, fatal, other };
    Kind kind = Kind::ok;
    Json output;          // ok: what the handler returned
    std::string error;    // otherwise: never empty
    bool suspended = false;   // ok, and the handler called ctx.suspend()
};

/// Runs handler.run(ctx); no exception leaves. Fatal: FatalError, and what
/// says the input is not what the handler reads, which every try would read
/// alike: [loom.input.missing] and [loom.input.type] (InputError, or an
/// InvalidArgument with that id), nlohmann::json::type_error and out_of_range.
/// RetryableError is retryable; anything else is other (retried too, if
/// attempts remain), including json::parse_error: text from outside (an HTTP
/// body) may be cut short by a transient fault.
Invocation invoke(StepHandler& handler, StepContext& ctx);

}  // namespace loom::detail
