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

/// How one attempt ended: of a step, an element or an undo. What the handler
/// returned or threw (invoke), or what the executor made instead: a timeout,
/// a child run's end, an outside complete() or fail(). The executor and
/// testing::StepHarness both read it.
struct Outcome {
    ErrorKind kind = ErrorKind::none;
    Json output;              // ok(): what the handler returned
    std::string error;        // otherwise: never empty
    bool suspended = false;   // ok(), and the handler called ctx.suspend()

    bool ok() const noexcept { return kind == ErrorKind::none; }
    /// Never retried, whatever attempts remain.
    bool fatal() const noexcept { return kind == ErrorKind::fatal; }

    static Outcome success(Json output) { return Outcome{ErrorKind::none, std::move(output), {}, false}; }
    /// `error` must not be empty.
    static Outcome failure(std::string error, bool fatal = false) {
        return Outcome{fatal ? ErrorKind::fatal : ErrorKind::other, {}, std::move(error), false};
    }
    /// An outside completion: complete() (error empty) or fail().
    static Outcome of(Json output, std::string error) {
        return error.empty() ? success(std::move(output)) : failure(std::move(error));
    }
};

/// Runs handler.run(ctx); no exception leaves. Fatal: FatalError, and what
/// says the input is not what the handler reads, which every try would read
/// alike: [loom.input.missing] and [loom.input.type] (InputError, or an
/// InvalidArgument with that id), nlohmann::json::type_error and out_of_range.
/// RetryableError is retryable; anything else is other (retried too, if
/// attempts remain), including json::parse_error: text from outside (an HTTP
/// body) may be cut short by a transient fault.
Outcome invoke(StepHandler& handler, StepContext& ctx);

}  // namespace loom::detail
