// Step handlers: the host's code. A handler sees only its StepContext, returns the
// step's output, and fails the attempt by throwing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>

#include <loom/clock.hpp>
#include <loom/json.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>

namespace loom {

namespace detail {

/// Whether `value` converts to T without loss: the JSON type T stands for, and
/// for integers a value within T's range (nlohmann's get<int>() would take
/// true, 2.5 or 1e10 and quietly make something else of it).
template <class T>
bool input_fits(const Json& value) {
    if constexpr (std::is_same_v<T, Json>) {
        return true;
    } else if constexpr (std::is_same_v<T, bool>) {
        return value.is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
        using limits = std::numeric_limits<T>;
        if (value.is_number_unsigned())
            return value.get<std::uint64_t>() <= static_cast<std::uint64_t>(limits::max());
        if (!value.is_number_integer()) return false;
        const auto v = value.get<std::int64_t>();
        if constexpr (std::is_signed_v<T>) return v >= limits::min() && v <= limits::max();
        else return v >= 0 && static_cast<std::uint64_t>(v) <= limits::max();
    } else if constexpr (std::is_floating_point_v<T>) {
        return value.is_number();
    } else if constexpr (std::is_same_v<T, std::string>) {
        return value.is_string();
    } else {
        return true;   // another type: its from_json decides (see StepContext::input)
    }
}

/// What T expects, for an error message: "an integer from 0 to 255", "a string".
template <class T>
std::string input_expected() {
    if constexpr (std::is_same_v<T, bool>) {
        return "a boolean";
    } else if constexpr (std::is_integral_v<T>) {
        using limits = std::numeric_limits<T>;
        return "an integer from " + std::to_string(limits::min()) + " to " + std::to_string(limits::max());
    } else if constexpr (std::is_floating_point_v<T>) {
        return "a number";
    } else if constexpr (std::is_same_v<T, std::string>) {
        return "a string";
    } else {
        return "a value of the type asked for";
    }
}


/// What the executor (or a test harness) gives a StepContext. Internal: hosts
/// never make a StepContext; the executor passes one to the handler.
struct StepContextParams {
    Json input;
    /// If set, computes the input the first time input() is called, instead
    /// of `input`: a handler that never reads its input never pays for it.
    std::function<Json()> resolve_input;
    int attempt = 1;
    RunId run_id;
    std::string step_id;
    std::optional<std::uint32_t> item;   // a for_each step's element index
    bool compensating = false;           // the step's compensation (undo), not the step
    const std::atomic<bool>* cancel_flag = nullptr;   // the run's; null: never cancelled
    const std::atomic<bool>* attempt_flag = nullptr;  // this attempt's (timed out); may be null
    /// When this attempt must be over: the earlier of its timeout and the
    /// run's deadline; empty: no limit.
    std::optional<TimePoint> deadline;
    const Clock* clock = nullptr;                     // for the deadline; null: SystemClock
    /// Gets each line and its number in this attempt (1 for the first).
    std::function<void(const LogRecord&, int line)> log_sink;   // null: logs are dropped
    int lines_logged = 0;
};
struct ContextAccess;   // makes StepContexts (src/handlers/invoke.hpp)
}  // namespace detail

/// What one attempt of one step sees.
///
/// Read the input with the typed accessors: they throw InputError, which fails
/// the step at once (never retried) with a message naming run, step and key,
/// where `ctx.input()["key"]` on the const Json would hit nlohmann's assertion
/// and abort the whole process if the key were missing:
///
///     int n = ctx.input<int>("count");                       // [loom.input.missing], [loom.input.type]
///     auto name = ctx.input<std::string>("/user/name"_json_pointer);
///     bool dry = ctx.input_or("dry_run", false);              // absent or null: false
///
/// Thread safety: used by the one thread that runs the attempt; cancelled() may
/// change at any time (it reads an atomic flag).
class StepContext {
public:

    /// The whole resolved input: references replaced by the values they name.
    /// Throws InputError "[loom.input.missing]" if a referenced key or index
    /// does not exist; the step then fails with that message, without a retry.
    const Json& input() const;
    /// The input's value at `key` (the input is an object) as a T. Throws
    /// InputError "[loom.input.missing]" if the key is absent or the input is
    /// not an object, and "[loom.input.type]" if the value is not of T's JSON
    /// type: a bool needs a boolean, an integer type an integer within its
    /// range (2.5 and true are refused), a floating-point type a number,
    /// std::string a string; Json takes any value, and any other type is what
    /// its from_json accepts. Also throws what input() throws.
    template <class T>
    T input(const std::string& key) const {
        const Json* value = find_input(key);
        if (!value) missing_input(key, nullptr);
        return convert_input<T>(*value, key, nullptr);
    }
    /// The value at a JSON pointer (RFC 6901) into the input, for nested
    /// values: `ctx.input<int>("/order/items/0/qty"_json_pointer)`. Throws as
    /// input(key) does.
    template <class T>
    T input(const Json::json_pointer& pointer) const {
        const Json* value = find_input(pointer);
        if (!value) missing_input({}, &pointer);
        return convert_input<T>(*value, {}, &pointer);
    }
    /// input<T>(key), or `fallback` where input<T>(key) would throw
    /// "[loom.input.missing]" (the key is absent, or the input is not an
    /// object) or the value is null. A value of another type still throws
    /// "[loom.input.type]": it is a bug, not a default.
    template <class T>
    T input_or(const std::string& key, T fallback) const {
        const Json* value = find_input(key);
        if (!value || value->is_null()) return fallback;
        return convert_input<T>(*value, key, nullptr);
    }
    template <class T>
    T input_or(const Json::json_pointer& pointer, T fallback) const {
        const Json* value = find_input(pointer);
        if (!value || value->is_null()) return fallback;
        return convert_input<T>(*value, {}, &pointer);
    }
    /// For `input_or("name", "anonymous")`: a string, not a const char*.
    std::string input_or(const std::string& key, const char* fallback) const {
        return input_or<std::string>(key, fallback);
    }
    std::string input_or(const Json::json_pointer& pointer, const char* fallback) const {
        return input_or<std::string>(pointer, fallback);
    }
    /// 1 for the first attempt.
    int attempt() const noexcept { return params_.attempt; }
    const RunId& run_id() const noexcept { return params_.run_id; }
    const std::string& step_id() const noexcept { return params_.step_id; }
    /// In a for_each step: the index of the element this attempt works on.
    const std::optional<std::uint32_t>& item_index() const noexcept { return params_.item; }
    /// True when this call is the step's compensation (a saga's undo of the
    /// completed step), false when it is the step itself.
    bool compensating() const noexcept { return params_.compensating; }
    /// "<run id>/<step id>", or "<run id>/<step id>[<index>]" for an element of
    /// a for_each, and "<run id>/<step id>/compensate" for the step's
    /// compensation: the same for every attempt and every re-run after a crash,
    /// so a handler can de-duplicate its side effects with it, and an undo (a
    /// refund) never shares the key of what it undoes (the charge).
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
    /// Sends a line to the executor's observer, tagged with run, step, element,
    /// attempt and time, and stores it with the run (Executor::logs), at most
    /// kMaxStoredLogLines lines of kMaxStoredLogBytes per attempt. Stored lines
    /// ride with the executor's next commit, 10 ms later at most; a crash
    /// before that loses them, as it loses the attempt.
    void log(LogLevel level, std::string_view message) const;
    void log(std::string_view message) const { log(LogLevel::info, message); }

private:
    // The value at key or pointer in input(), or null if there is none.
    const Json* find_input(const std::string& key) const;
    const Json* find_input(const Json::json_pointer& pointer) const;
    // Throw InputError naming this attempt and `key`, or `pointer` if not null.
    [[noreturn]] void missing_input(const std::string& key, const Json::json_pointer* pointer) const;
    [[noreturn]] void wrong_input_type(const std::string& key, const Json::json_pointer* pointer,
                                       const Json& value, const std::string& expected) const;

    template <class T>
    T convert_input(const Json& value, const std::string& key, const Json::json_pointer* pointer) const {
        if (!detail::input_fits<T>(value)) wrong_input_type(key, pointer, value, detail::input_expected<T>());
        try {
            return value.get<T>();
        } catch (const Json::exception& e) {   // only a type input_fits leaves to from_json
            wrong_input_type(key, pointer, value, std::string("a value of the type asked for (") + e.what() + ")");
        }
    }

    explicit StepContext(detail::StepContextParams params);
    friend struct detail::ContextAccess;

    mutable detail::StepContextParams params_;   // input is resolved on first use
    bool suspended_ = false;
};

/// A step type's code. Implement run(); throw to fail the attempt.
///
/// What a throw does: FatalError fails the step for good. So do InputError
/// (what StepContext::input() and its typed forms throw) and nlohmann::json's
/// type_error and out_of_range (e.g. `.get<int>()` of a string, `.at("key")`
/// of an absent key): they say the input is not what the handler reads, and
/// every attempt would read the same input. Anything else (RetryableError, any
/// other exception, json::parse_error too) is retried while the step's retry
/// policy allows. A handler that reads JSON from elsewhere, where a wrong shape
/// can be transient (an HTTP reply that holds an error body during an outage),
/// opts back in by catching and rethrowing:
///
///     try { price = reply.at("price").get<double>(); }
///     catch (const loom::Json::exception& e) { throw loom::RetryableError(e.what()); }
///
/// Thread safety: run() may be called from several threads at once (one call
/// per attempt); an implementation with state synchronizes it.
class StepHandler {
public:
    virtual ~StepHandler() = default;
    virtual Json run(StepContext& ctx) = 0;
};

/// How a handler's attempt ended, as the executor classifies it (and
/// testing::StepHarness reports it).
///   none: it returned; retryable: it threw RetryableError; fatal: it threw
///   FatalError, InputError (a missing or mistyped input value) or
///   nlohmann::json's type_error or out_of_range (never retried: see
///   StepHandler); other: it threw anything else (retried if the step's retry
///   policy allows, like retryable).
enum class ErrorKind { none, retryable, fatal, other };
/// "none", "retryable", "fatal", "other".
std::string_view to_string(ErrorKind kind) noexcept;
/// Writes to_string(kind), so that test frameworks print the name.
std::ostream& operator<<(std::ostream& out, ErrorKind kind);

/// Maps handler names (the "handler" of a step) to handlers.
///
///     loom::HandlerRegistry handlers;
///     handlers.add("double", [](loom::StepContext& ctx) -> loom::Json {
///         return ctx.input<int>("value") * 2;
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
