// Tools for unit-testing step handlers: a clock that moves only when the test
// says so, and a harness that runs one handler without store, executor or
// threads. Not part of loom.hpp: include <loom/testing.hpp> in tests.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/clock.hpp>
#include <loom/error.hpp>
#include <loom/handler.hpp>
#include <loom/json.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>

namespace loom::testing {

/// A Clock whose time moves only by advance() and set().
///
///     loom::testing::FakeClock clock;                  // 2026-01-01T00:00:00Z
///     harness.clock(clock).deadline(clock.now() + std::chrono::seconds(30));
///     clock.advance(std::chrono::seconds(31));         // ctx.cancelled() is now true
///
/// It can also be an executor's clock (ExecutorOptions::clock); it must then
/// outlive the executor.
///
/// wait_until() blocks until a notify of the condition variable or at most
/// kMaxWakeDelay of real time (a spurious wake-up, which the Clock contract
/// allows), and returns at once if the fake time has reached `at`.
/// advance() and set() notify every condition variable a thread is waiting on
/// in wait_until(). They cannot hold the waiter's mutex, so such a notify may
/// fall between the waiter's check of the time and its going to sleep and be
/// lost; each real wait is therefore bounded by kMaxWakeDelay of real time, which
/// is the most a lost notify costs. Nothing else takes real time.
///
/// Thread safety: every member may be called from any thread, concurrently.
/// Time never goes backwards.
class FakeClock final : public Clock {
public:
    /// The default start, 2026-01-01T00:00:00Z.
    static constexpr TimePoint kDefaultStart{std::chrono::seconds{1767225600}};
    /// The longest real time a waiter sleeps before it looks at the fake time
    /// again: how late a wake-up can be when advance()'s notify is lost.
    static constexpr std::chrono::milliseconds kMaxWakeDelay{2};

    explicit FakeClock(TimePoint start = kDefaultStart) : now_(start) {}

    TimePoint now() const override;
    /// Returns at once if `at` is reached; otherwise sleeps until `cv` is
    /// notified (by the caller's code or by advance()/set()) or kMaxWakeDelay
    /// of real time passes, whichever is first. Callers loop until their
    /// condition holds, as the Clock contract requires.
    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                    TimePoint at) const override;

    /// Moves the time forward by `by` and wakes the waiters. Throws
    /// InvalidArgument "[loom.testing.clock_backwards]" for a negative `by`.
    void advance(TimePoint::duration by);
    /// Sets the time to `to` and wakes the waiters. Throws InvalidArgument
    /// "[loom.testing.clock_backwards]" if `to` is earlier than now().
    void set(TimePoint to);

    /// How many threads are blocked in wait_until() now: a test can wait for
    /// the code under test to be idle (waiting for time) before advancing it.
    std::size_t waiters() const;

private:
    void move_to(TimePoint to);   // mutex_ held

    mutable std::mutex mutex_;
    TimePoint now_;                                          // guarded by mutex_
    mutable std::vector<std::condition_variable*> waiting_;  // guarded by mutex_; one per waiter
};

/// How a handler's attempt ended, as the executor classifies it.
///   none: it returned; retryable: it threw RetryableError; fatal: it threw
///   FatalError (never retried); other: it threw anything else (retried if the
///   step's retry policy allows, like retryable).
enum class ErrorKind { none, retryable, fatal, other };
/// "none", "retryable", "fatal", "other".
std::string_view to_string(ErrorKind kind) noexcept;
/// Writes to_string(kind), so that test frameworks print the name.
std::ostream& operator<<(std::ostream& out, ErrorKind kind);

/// What StepHarness::run() saw.
struct StepResult {
    Json output;                    // what the handler returned; null if it threw
    std::string error;              // the exception's what(); empty if it returned
    ErrorKind error_kind = ErrorKind::none;
    std::vector<LogRecord> logs;    // what the handler wrote with ctx.log, in order

    bool ok() const noexcept { return error_kind == ErrorKind::none; }
    /// Would the executor try again if attempts remain (retryable or other)?
    bool retryable() const noexcept {
        return error_kind == ErrorKind::retryable || error_kind == ErrorKind::other;
    }
};

/// Runs one step handler on an input of the test's choosing, in the calling
/// thread, without store, executor or worker threads, and reports what it
/// returned, threw and logged.
///
///     loom::testing::StepHarness h(std::make_shared<MyHandler>());
///     auto r = h.input({{"x", 2}}).attempt(3).run();
///     CHECK(r.ok());
///     CHECK(r.output == 4);
///
/// The handler sees a StepContext with run id "test-run", step id "test-step",
/// attempt 1 and input {} unless set otherwise. The input is passed as given:
/// "${...}" references are not resolved, and the output is not checked against
/// the executor's payload limits (ExecutorOptions::payload), so a result the
/// executor would refuse for its size or depth still passes here.
///
/// Thread safety: the setters and run() are for one thread at a time; run()
/// may be called again and again (each call is a new attempt's context).
/// cancel() may be called from any thread at any time, also while run() is
/// running, which is how a test checks that a long handler notices
/// ctx.cancelled().
class StepHarness {
public:
    /// Throws InvalidArgument "[loom.handler.null]" for a null handler.
    explicit StepHarness(std::shared_ptr<StepHandler> handler);
    explicit StepHarness(HandlerRegistry::Function function);
    /// The handler registered as `name`. Throws NotFound
    /// "[loom.handler.unknown]" if there is none.
    StepHarness(const HandlerRegistry& registry, std::string_view name);

    StepHarness(const StepHarness&) = delete;
    StepHarness& operator=(const StepHarness&) = delete;

    /// What ctx.input() returns. Default: {} (an empty object).
    StepHarness& input(Json value);
    /// What ctx.attempt() returns, 1 for the first. Throws InvalidArgument
    /// "[loom.testing.bad_attempt]" if below 1.
    StepHarness& attempt(int number);
    StepHarness& run_id(RunId id);
    StepHarness& step_id(std::string id);
    /// The run's deadline, by the harness's clock.
    StepHarness& deadline(TimePoint at);
    /// The attempt's timeout: the deadline is the clock's now() when run()
    /// starts plus `after`, or deadline() if that is earlier, as the executor
    /// computes it.
    StepHarness& timeout(TimePoint::duration after);
    /// Sets or clears the run's cancel flag, which ctx.cancelled() reads. Stays
    /// as set (by this or by cancel()) across runs until set again.
    StepHarness& cancelled(bool value);
    /// The clock ctx.cancelled() compares the deadline with. Default:
    /// SystemClock. Not owned: it must outlive the harness.
    StepHarness& clock(const Clock& clock);

    /// Sets the run's cancel flag; safe from any thread while run() runs.
    void cancel() noexcept { cancel_flag_.store(true, std::memory_order_relaxed); }

    /// Calls the handler once. Never throws what the handler throws: that
    /// becomes StepResult::error and error_kind.
    StepResult run() const;

private:
    std::shared_ptr<StepHandler> handler_;
    Json input_ = Json::object();
    int attempt_ = 1;
    RunId run_id_ = "test-run";
    std::string step_id_ = "test-step";
    std::optional<TimePoint> deadline_;
    std::optional<TimePoint::duration> timeout_;
    const Clock* clock_ = nullptr;   // null: SystemClock
    std::atomic<bool> cancel_flag_{false};
};

}  // namespace loom::testing
