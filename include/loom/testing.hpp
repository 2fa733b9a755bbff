// Tools for unit-testing step handlers and workflows: a clock that moves only
// when the test says so, a harness that runs one handler without store,
// executor or threads, and one that runs a whole workflow in-process with mocks
// and simulated crashes. Not part of loom.hpp: include <loom/testing.hpp> in tests.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/clock.hpp>
#include <loom/error.hpp>
#include <loom/executor.hpp>
#include <loom/handler.hpp>
#include <loom/json.hpp>
#include <loom/memory_store.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>
#include <loom/workflow.hpp>

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

// How the executor classifies an attempt's end: <loom/handler.hpp>.
using loom::ErrorKind;
using loom::to_string;

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
/// attempt 1, input {} and compensating() false unless set otherwise. The
/// input is passed as given: "${...}" references are not resolved, and the
/// output is not checked against the executor's payload limits
/// (ExecutorOptions::payload), so a result the executor would refuse for its
/// size or depth still passes here. Exceptions are classified as the executor
/// classifies them (see ErrorKind).
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
    /// Calls the handler as the step's compensation (a saga's undo): what
    /// ctx.compensating() returns, and the idempotency key then ends in
    /// "/compensate". Default: false.
    StepHarness& compensating(bool value = true);
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
    bool compensating_ = false;
    std::optional<TimePoint> deadline_;
    std::optional<TimePoint::duration> timeout_;
    const Clock* clock_ = nullptr;   // null: SystemClock
    std::atomic<bool> cancel_flag_{false};
};

/// A run that cannot finish as WorkflowHarness drives it:
/// "[loom.testing.stalled]" nothing is due however far the clock moves (a
/// hang() without a timeout or deadline), "[loom.testing.time_limit]" the next
/// wake-up lies beyond the limit given to settle(), "[loom.testing.busy]" a
/// handler has run for HarnessOptions::busy_limit of real time with nothing
/// committed (one that waits for ctx.cancelled() needs hang()).
class Stalled : public Error {
public:
    using Error::Error;
};

struct HarnessOptions {
    /// The executor's worker threads (ExecutorOptions::threads; 0: one per core).
    unsigned threads = 2;
    /// Told of runs, steps and log lines, as ExecutorOptions::observer; may be
    /// null. Must outlive the harness.
    Observer* observer = nullptr;
    /// Where the FakeClock starts.
    TimePoint start = FakeClock::kDefaultStart;
    /// How long (real time) settle() and advance() wait for a busy run while
    /// nothing is committed before they throw Stalled "[loom.testing.busy]".
    std::chrono::milliseconds busy_limit{30'000};
};

/// One trial of WorkflowHarness::check_every_crash_point(): the run that died
/// at commit `crash_at`, recovered and driven to its end.
struct CrashTrial {
    std::size_t crash_at = 0;    // the commit that failed, counted from the start (1: the start's)
    bool crashed = false;        // false: the run ended in fewer commits, without a crash
    RunInfo clean;               // the same input run without a crash
    /// The run as the store held it when the process died: what recover()
    /// found. nullopt when the start's own commit failed; the host, whose
    /// start() threw, then started it again.
    std::optional<RunInfo> at_crash;
    RunInfo run;                 // after recovery, final
    /// Handler calls per step id (every step, 0 if none) of this trial's run:
    /// up to the crash, including attempts in flight at it (they finish before
    /// the recovery starts), and after the recovery.
    std::map<std::string, int, std::less<>> calls_before;
    std::map<std::string, int, std::less<>> calls_after;
};

/// Runs a whole workflow in-process, on a MemoryStore with a FakeClock, with
/// per-step mocks and simulated crashes, so that a test exercises the
/// definition (dependencies, inputs, conditions, retries, timeouts, sleeps)
/// and the real handlers together, in milliseconds of real time.
///
///     loom::testing::WorkflowHarness h(workflow, handlers);  // the real handlers
///     h.mock("charge", {{"charge_id", "ch_1"}});              // canned output
///     h.fail("ship", 2, "carrier down");                     // attempts 1, 2 throw
///     loom::RunInfo run = h.run({{"order", 7}});              // retries fire at once
///     CHECK(run.status == loom::RunStatus::completed);
///     CHECK(h.calls("ship") == 3);
///
///     h.check_every_crash_point({{"order", 7}}, [](const loom::testing::CrashTrial& t) {
///         CHECK(t.run.output == t.clean.output);
///     });
///
/// Handlers. A step runs its mock if it has one, else the handler its
/// "handler" names in the registry given at construction (looked up then;
/// the registry need not outlive the harness). Mocks apply to one step id,
/// even where other steps share its handler name, and may be set while runs
/// go on (the next attempt sees them). For attempt number k of a step: k <=
/// hang()'s count hangs until the attempt is given up; else k <= fail()'s
/// count throws; else the mocked output or function, else the real handler.
/// Steps of the built-in "sleep" type are run by the executor and cannot be
/// mocked; their wait ends when the clock reaches it. A "wait" step cannot be
/// mocked either: send its signal with executor().signal(), or let its
/// timeout_ms pass.
///
/// Sub-workflows. A "workflow:NAME" step runs a child run of NAME once NAME
/// is given to add_workflow() (its steps run the handlers of the registry
/// given there, unless mocked), or it is mocked: mock(id, output) completes
/// the step with `output` and no child run, mock(id, function) calls
/// `function` with the step's input, fail(id, n >= 1, message) fails it (a
/// sub-workflow step has one attempt). Steps of an added workflow are named
/// "NAME/step" in mock(), fail(), hang() and calls(): "review/approve".
///
/// Time. Nothing moves the FakeClock but advance(), settle() (and run()) and
/// clock(). settle() moves it, each time the runs are quiet, straight to the
/// next instant something is due: a retry's backoff, a sleep, a wait step's
/// timeout_ms (and a suspended step's timeout), an attempt's timeout while
/// hang() holds it, the run's deadline; in the run and in its child runs. A
/// run is quiet when no step is ready or running other than one a hang()
/// holds and no wake-up is already due. A real handler is never interrupted by time: fake time stands
/// still while it runs, so its timeout can only fire if it blocks (hang()).
///
/// Crashes. crash_at(n) makes the n-th commit from then on fail with
/// StoreError "[loom.testing.crash]", and every commit after it: the store
/// keeps exactly what the commits before it wrote, which is what a process
/// killed before that commit landed leaves behind (a commit is atomic, so the
/// points between commits are all the crash points there are). The executor
/// abandons its runs; recover() replaces it with a new one on the same store
/// and resumes them, as a restarted process does. What this does not model: a
/// handler in flight at the crash is not killed; it runs to its end (its
/// result is dropped). The recovery treats its attempt as after a real crash
/// (see Executor::recover()): if its start was committed it counts as an
/// interrupted attempt, and the step runs again only if its retry policy
/// leaves it one; if not, it runs again as the same attempt. Here a start is
/// committed only by a commit made for something else (its own result, a
/// step or element running beside it, a signal): the fake clock stands still
/// while a handler runs, so the executor's 10 ms flush of starts does not
/// fall due (unless hang() holds the attempt). In a chain of steps whose
/// handlers commit nothing a crash thus never finds an attempt running; where
/// steps run side by side it may, depending on timing, and a step without a
/// retry policy then fails on recovery, so that the trial's run may end
/// otherwise than the clean one: give steps the retry policy they have in
/// production. Such a second run is
/// Loom's at-least-once promise, where the side effects of the first may or
/// may not have happened: StepContext::idempotency_key() is for
/// de-duplicating them. Sweeping n over
/// every commit of a run, check_every_crash_point() proves a workflow correct
/// under crashes: each recovered run ends as a clean run does, and no step
/// whose completion was committed ever runs again.
///
/// Thread safety: mock(), fail(), hang(), calls(), commit_count() and
/// crashed() may be called from any thread (a handler too) at any time. The
/// others are for one test thread at a time; clock(), store() and the executor
/// are themselves thread-safe.
class WorkflowHarness {
public:
    /// The default limit of settle(): a year of fake time.
    static constexpr TimePoint::duration kMaxAdvance = std::chrono::hours(24 * 366);

    /// A harness whose steps all need mocks.
    explicit WorkflowHarness(Workflow workflow, HarnessOptions options = {});
    /// A harness whose steps run the handlers `handlers` holds (looked up now)
    /// unless mocked.
    WorkflowHarness(Workflow workflow, const HandlerRegistry& handlers, HarnessOptions options = {});
    /// Stops the executor: in-flight handlers finish, a hang() returns.
    ~WorkflowHarness();
    WorkflowHarness(const WorkflowHarness&) = delete;
    WorkflowHarness& operator=(const WorkflowHarness&) = delete;

    /// Adds a workflow that "workflow:NAME" steps run as a child run (see
    /// Sub-workflows above), its steps needing mocks (first form) or running
    /// the handlers `handlers` holds, looked up now. Call it before start().
    /// Throws Conflict "[loom.testing.workflow_added]" for a name the harness
    /// has already, and what Executor::add_workflow throws.
    WorkflowHarness& add_workflow(Workflow workflow);
    WorkflowHarness& add_workflow(Workflow workflow, const HandlerRegistry& handlers);

    /// The step returns `output` (after hang() and fail() attempts); a
    /// "workflow:NAME" step completes with it, starting no child run.
    /// The mock functions throw InvalidArgument "[loom.testing.unknown_step]"
    /// for a step the workflows lack and "[loom.testing.not_mockable]" for a
    /// step of a built-in type ("sleep", "wait"), and hang() for a
    /// "workflow:NAME" step.
    WorkflowHarness& mock(std::string_view step_id, Json output);
    /// The step returns null (mock(id, nullptr) would be ambiguous otherwise).
    WorkflowHarness& mock(std::string_view step_id, std::nullptr_t) {
        return mock(step_id, Json(nullptr));
    }
    /// The step runs `function` instead of its handler. Throws also
    /// InvalidArgument "[loom.handler.null]" for a null function.
    WorkflowHarness& mock(std::string_view step_id, HandlerRegistry::Function function);
    /// Attempts 1..first_n_attempts of the step throw `message`: FatalError if
    /// `fatal` (never retried), else RetryableError; later attempts run the
    /// mock or the real handler. 0 removes the failures. Throws also
    /// InvalidArgument "[loom.testing.bad_count]" for a negative count.
    WorkflowHarness& fail(std::string_view step_id, int first_n_attempts,
                          std::string message = "injected failure", bool fatal = false);
    /// Attempts 1..first_n_attempts of the step block until ctx.cancelled()
    /// (the attempt's timeout, the run's deadline, a cancel, a crash) and then
    /// throw RetryableError. settle() knows what they wait for and moves the
    /// clock to it. 0 removes the hang. Throws as fail().
    WorkflowHarness& hang(std::string_view step_id, int first_n_attempts = 1);

    /// Starts a run of the workflow and returns once it is durable. Throws
    /// NotFound "[loom.handler.unknown]" naming the first step (of the
    /// workflow or an added one) with neither a handler nor a mock, and what
    /// Executor::start throws (StoreError once crashed; "[loom.workflow.unknown]"
    /// for a "workflow:NAME" step neither mocked nor added).
    RunId start(const Json& input = Json::object());
    /// start(), then settle(): the run as it ended.
    RunInfo run(const Json& input = Json::object());
    /// Drives the run to its end: waits (real time) until the runs are quiet,
    /// moves the clock to the next wake-up, and again, until the run is final.
    /// Throws Stalled (see there), StoreError once crashed (recover() first),
    /// and what Executor::wait throws.
    RunInfo settle(const RunId& id, TimePoint::duration max_advance = kMaxAdvance);
    /// Blocks until the run is final without moving the clock (a run that
    /// needs time to pass never ends this way). Throws as Executor::wait.
    RunInfo wait(const RunId& id);
    /// Waits until the runs are quiet (as settle(); not after a crash), then
    /// moves the clock forward by `by`. clock().advance(by) moves it at once.
    /// Throws Stalled "[loom.testing.busy]", and InvalidArgument
    /// "[loom.testing.clock_backwards]" for a negative `by`.
    void advance(TimePoint::duration by);

    /// The n-th commit from now fails, 1 the next, and every later one, until
    /// recover(). Throws InvalidArgument "[loom.testing.bad_count]" for 0.
    void crash_at(std::size_t n);
    /// True once the commit crash_at() chose has failed, until recover().
    bool crashed() const;
    /// Commits the store has taken since the harness was made.
    std::size_t commit_count() const;
    /// Replaces the executor with a new one on the same store (after its
    /// in-flight handlers finished), clears crash_at(), and resumes every
    /// unfinished run: Executor::recover(), whose ids it returns and throws.
    std::vector<RunId> recover();

    /// Runs the workflow once, without a crash, and returns how many commits
    /// that took: the crash points of a run of this input.
    std::size_t commits_of_a_clean_run(const Json& input = Json::object());
    /// Proves the workflow correct under crashes: runs it once cleanly, then,
    /// for each n = 1, 2, ..., runs it with crash_at(n), recovers, drives it to
    /// its end (starting it again if the start's own commit failed) and calls
    /// `checker` with the trial; it stops after the clean run's number of
    /// commits once a trial ends without a crash. Returns the number of
    /// trials. Throws Conflict "[loom.testing.crashed]" if called while
    /// crashed, what `checker` throws, and what run() throws.
    std::size_t check_every_crash_point(const Json& input,
                                        const std::function<void(const CrashTrial&)>& checker);

    /// Calls of the step's handler or mock, in all runs of this harness
    /// (built-in steps: 0; a mocked "workflow:" step: its mock's). Throws
    /// InvalidArgument "[loom.testing.unknown_step]".
    int calls(std::string_view step_id) const;
    /// Calls of the step's handler or mock in run `id`.
    int calls(const RunId& id, std::string_view step_id) const;

    FakeClock& clock() noexcept;
    /// The store runs are recorded in; unaffected by crash_at().
    MemoryStore& store() noexcept;
    /// The current executor; recover() replaces it.
    Executor& executor() noexcept;
    const Workflow& workflow() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom::testing
