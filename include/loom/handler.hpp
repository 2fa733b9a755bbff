// Step handlers: the host's code. A handler sees only its StepContext, returns the
// step's output, and fails the attempt by throwing.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <map>
#include <optional>

#include <loom/clock.hpp>
#include <loom/json.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>

namespace loom {

/// What one attempt of one step sees.
///
/// Thread safety: used by the one thread that runs the attempt; cancelled() may
/// change at any time (it reads an atomic flag).
class StepContext {
public:
    struct Params {
        Json input;
        /// If set, computes the input the first time input() is called, instead
        /// of `input`: a handler that never reads its input never pays for it.
        std::function<Json()> resolve_input;
        int attempt = 1;
        RunId run_id;
        std::string step_id;
        std::optional<std::uint32_t> item;   // a for_each step's element index
        const std::atomic<bool>* cancel_flag = nullptr;   // the run's; null: never cancelled
        const std::atomic<bool>* attempt_flag = nullptr;  // this attempt's (timed out); may be null
        /// When this attempt must be over: the earlier of its timeout and the
        /// run's deadline; empty: no limit.
        std::optional<TimePoint> deadline;
        const Clock* clock = nullptr;                     // for the deadline; null: SystemClock
        std::function<void(const LogRecord&)> log_sink;   // null: logs are dropped
    };
    explicit StepContext(Params params);

    /// The resolved input: references replaced by the values they name.
    /// Throws InvalidArgument "[loom.input.missing]" if a referenced key or
    /// index does not exist; the attempt then fails with that message.
    const Json& input() const;
    /// 1 for the first attempt.
    int attempt() const noexcept { return params_.attempt; }
    const RunId& run_id() const noexcept { return params_.run_id; }
    const std::string& step_id() const noexcept { return params_.step_id; }
    /// In a for_each step: the index of the element this attempt works on.
    const std::optional<std::uint32_t>& item_index() const noexcept { return params_.item; }
    /// "<run id>/<step id>", or "<run id>/<step id>[<index>]" for an element of
    /// a for_each: the same for every attempt and every re-run after a crash,
    /// so a handler can de-duplicate its side effects with it.
    std::string idempotency_key() const;
    /// True once the run is cancelled, or this attempt is past its deadline; a
    /// long handler should check and return (its result is discarded anyway).
    bool cancelled() const noexcept;
    /// When this attempt must be over (its timeout or the run's deadline,
    /// whichever is earlier); empty: no limit. Pass what remains on to slow
    /// calls (HTTP, database) so they give up in time.
    const std::optional<TimePoint>& deadline() const noexcept { return params_.deadline; }
    /// "<run id>/<step id>/<attempt>": names this attempt to an outside system
    /// that will finish it later (see suspend()).
    std::string completion_token() const;
    /// Hands the step to an outside system: when the handler returns, the
    /// step is suspended (its return value is ignored) until someone calls
    /// Executor::complete(token, output) or fail(token, error) with
    /// completion_token(); the step's timeout_ms, if set, still applies.
    void suspend() noexcept { suspended_ = true; }
    bool suspended() const noexcept { return suspended_; }
    /// Sends a line to the executor's observer, tagged with run, step and attempt.
    void log(LogLevel level, std::string_view message) const;
    void log(std::string_view message) const { log(LogLevel::info, message); }

private:
    mutable Params params_;   // input is resolved on first use
    bool suspended_ = false;
};

/// A step type's code. Implement run(); throw to fail the attempt.
///
/// Thread safety: run() may be called from several threads at once (one call
/// per attempt); an implementation with state synchronizes it.
class StepHandler {
public:
    virtual ~StepHandler() = default;
    virtual Json run(StepContext& ctx) = 0;
};

/// Maps handler names (the "handler" of a step) to handlers.
///
///     loom::HandlerRegistry handlers;
///     handlers.add("double", [](loom::StepContext& ctx) -> loom::Json {
///         return ctx.input()["value"].get<int>() * 2;
///     });
///
/// Thread safety: safe; add and find may be called concurrently. Runs use the
/// handlers found when they start (or are recovered).
class HandlerRegistry {
public:
    using Function = std::function<Json(StepContext&)>;

    /// Registers or replaces a handler. Throws InvalidArgument for an empty name
    /// or a null handler.
    void add(std::string name, std::shared_ptr<StepHandler> handler);
    void add(std::string name, Function function);

    /// The handler, or nullptr.
    std::shared_ptr<StepHandler> find(std::string_view name) const;
    bool contains(std::string_view name) const { return find(name) != nullptr; }

private:
    mutable std::shared_mutex mutex_;
    std::map<std::string, std::shared_ptr<StepHandler>, std::less<>> handlers_;  // guarded by mutex_
};

}  // namespace loom
