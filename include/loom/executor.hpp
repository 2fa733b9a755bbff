// The executor runs workflows: it schedules ready steps on a thread pool, calls
// handlers, and commits every transition to the Store before acting on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <loom/clock.hpp>
#include <loom/handler.hpp>
#include <loom/json.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>
#include <loom/store.hpp>
#include <loom/workflow.hpp>

namespace loom {

namespace detail {
struct ExecutorAccess;
}

/// Bounds on a run's input and on each step's output, checked before either is
/// copied or stored.
struct PayloadLimits {
    std::size_t max_bytes = 16 << 20;   // as JSON text
    std::size_t max_depth = 256;        // nesting of arrays and objects
};

struct ExecutorOptions {
    /// Threads that run handlers (and commit, in turn). 0: one per core.
    unsigned threads = 0;
    /// Told of runs, steps and log lines; may be null. Must outlive the executor.
    Observer* observer = nullptr;
    /// Limits for definitions added or loaded from the store.
    DefinitionLimits limits{};
    /// Limits for run inputs (start() throws InvalidArgument) and step outputs
    /// (the attempt fails).
    PayloadLimits payload{};
    /// Time for backoff, timeouts, deadlines and timers; null: SystemClock.
    /// Must outlive the executor (testing::FakeClock skips time in tests).
    const Clock* clock = nullptr;
    /// At most this many attempts of a handler (by name) / of a workflow's
    /// steps (by workflow name) run at once, within `threads`; steps over the
    /// limit wait, holding no thread. Absent: no limit beyond `threads`.
    std::map<std::string, unsigned> max_running_per_handler{};
    std::map<std::string, unsigned> max_running_per_workflow{};
    /// How long destruction lets in-flight handlers finish before it asks
    /// them to stop (ctx.cancelled() turns true). Real time, not `clock`.
    std::chrono::milliseconds shutdown_grace{10'000};
    /// How often the executor reads the history of a run suspended here for
    /// signals and completions that another process recorded. control_poll
    /// finds them too; this is a second way. Measured on `clock`. Zero: never.
    std::chrono::milliseconds delivery_poll{1'000};
    /// This executor's name in the store, as the owner of the runs it runs
    /// (RunInfo::owner). Empty: a new one, unique on the host
    /// ("loom/<host>/<pid namespace>/<pid>/<process start>/<n>"), which also
    /// lets an executor on the same host see at once that a crashed process's
    /// runs are free. A stable name (a replica's) lets its restarted process
    /// take back the runs it left at its recover(). Two live executors sharing
    /// a store must never share a name. Names starting "loom/" are reserved.
    std::string identity{};
    /// How long the runs this executor owns stay its own without a renewal;
    /// it renews them every third of it. Another executor may adopt a run
    /// once its lease has expired (a dead or cut-off owner), so a run waits
    /// at most about this long after its owner dies on another host. An
    /// owner that could not renew for four fifths of it stops running its
    /// runs. Real time, not `clock`. At least 10 ms.
    std::chrono::milliseconds lease{10'000};
    /// Every half lease, look for unfinished runs nobody holds (their owner
    /// died, stopped or released them) whose workflows this executor has all
    /// the handlers of, and run them, as recover() does (enqueued runs
    /// aside); and every control_poll claim enqueued runs
    /// (StartOptions::enqueue), within max_claimed. Off: this
    /// executor runs only the runs it starts or recover()s, and recover()
    /// takes enqueued runs too (all it can run).
    bool adopt = true;
    /// At most this many runs taken by the control_poll's claims (enqueued
    /// runs, and free ones it finds) run here at once, suspended ones
    /// included; the rest wait for this or another executor. 0: twice
    /// `threads`. More lets many runs' steps share each commit (on
    /// PostgreSQL, 200 x 10 no-op steps ran twice as fast at 16 per thread);
    /// fewer spread a small backlog more evenly over executors.
    std::size_t max_claimed = 0;
    /// How often this executor looks in the store for cancel, pause, resume,
    /// signals and completions that other executors (other processes)
    /// recorded for the runs it runs; they take effect within about this
    /// long. One indexed read per poll. Real time, not `clock`. At least 1 ms.
    std::chrono::milliseconds control_poll{100};
    /// Keeps final runs this long after they finished, then deletes them
    /// with their steps, elements, history and log lines (see purge()),
    /// looking every retention_every (real time). Measured on `clock`.
    /// Absent: runs are kept until purge() is called. At least 1 ms each.
    std::optional<std::chrono::milliseconds> retention{};
    std::chrono::milliseconds retention_every{std::chrono::minutes(10)};
};

/// Which definition start() uses and how.
struct StartOptions {
    /// The version to run. Empty: the highest version added to this executor,
    /// or, if none was, the highest in the store.
    std::optional<std::int64_t> version;
    /// Non-empty: a second start() with the same key returns the run the first
    /// one started (even from another process sharing the store), so a host can
    /// retry a start it is unsure of without starting twice. Reusing a key with
    /// another workflow or input throws Conflict "[loom.run.key_reused]".
    std::string idempotency_key;
    /// Steps of runs with a higher priority are taken first when steps wait
    /// for a thread (steps of equal priority: first come, first served).
    /// Kept with the run, also across recovery; a child run has its parent's.
    int priority = 0;
    /// True: the run is recorded for any executor sharing the store that has
    /// every handler it needs (this one too) to claim, instead of being run
    /// here. start() returns once it is recorded; the handlers are not
    /// checked here, so a process without them (a front end, a scheduler) can
    /// start runs that workers run. Each executor (with `adopt` on) claims
    /// such runs every control_poll, and as soon as one it claimed ends, up
    /// to ExecutorOptions::max_claimed at once: a backlog spreads over the
    /// executors by capacity. (Runs that come slower than one executor ends
    /// them go to whichever looks first.) The run's history starts with
    /// "run.enqueued" and "run.claimed".
    bool enqueue = false;
};

/// Runs workflows durably.
///
///     loom::SqliteStore store("runs.db");
///     loom::ExecutorOptions options;
///     options.threads = 4;
///     loom::Executor executor(store, handlers, options);
///     executor.add_workflow(wf);
///     loom::RunId id = executor.start("etl", {{"url", "https://example.org"}});
///     loom::RunInfo run = executor.wait(id);
///
/// Durability: a step's result is committed before any step that depends on it
/// starts, in the same transaction that makes its dependents ready. Transitions
/// of many steps and runs share transactions (group commit). After a crash,
/// recover() resumes every unfinished run; completed steps never run again.
///
/// Destruction stops dispatching new steps and timers, lets in-flight
/// handlers finish for up to ExecutorOptions::shutdown_grace, then sets their
/// ctx.cancelled() and waits for them to return, and commits their results.
/// A failure thrown after the grace is not the step's failure and does not
/// count against its retry policy: the step (or element) runs again after
/// recover(), keeping its attempt number if its start was stored (its
/// attempt_base goes up by one). Unfinished runs stay "running" in the store
/// and a later recover() resumes them. A handler that ignores ctx.cancelled()
/// holds destruction until it returns: a thread cannot be stopped from outside.
///
/// Thread safety: every member function may be called from any thread,
/// concurrently. The store, handlers and observer must outlive the executor.
class Executor {
public:
    /// Throws InvalidArgument for bad options.
    Executor(Store& store, HandlerRegistry& handlers, ExecutorOptions options = {});
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    /// Persists the definition (idempotent) and makes it startable by name.
    /// Throws Conflict if (name, version) is stored with other content. It
    /// does not check handlers (see check()): a host may add workflows before
    /// it registers their handlers, and a parent before its sub-workflows.
    void add_workflow(const Workflow& workflow);

    /// Checks that a run of the workflow would find everything it needs:
    /// every step's handler and compensation handler registered, and for
    /// each "workflow:NAME" step the workflow NAME added or stored (its
    /// highest version, as a child run would start it) with all of its own
    /// handlers, and so on down (each workflow once). start() makes this
    /// check before it records anything; a host calls it after adding its
    /// workflows and registering its handlers, to fail at startup instead.
    /// Throws NotFound "[loom.handler.unknown]" or "[loom.workflow.unknown]"
    /// naming the workflow, step and handler (or workflow), after the chain of
    /// "workflow:" steps that led there.
    void check(const Workflow& workflow);

    /// For development: as add_workflow(), except that other content stored
    /// under the workflow's (name, version) is replaced instead of refused,
    /// provided no unfinished run uses that version, so that a definition can
    /// be edited and reloaded without a new version number each time.
    /// Finished runs keep the hash they ran with (retry() and rerun() of
    /// them then throw "[loom.run.definition_changed]"). Throws Conflict
    /// "[loom.workflow.in_use]" naming an unfinished run of that version, and
    /// StoreError; nothing is changed then. Production code uses
    /// add_workflow() and new versions: a version is a promise that runs
    /// pinned to it keep their definition.
    void replace_workflow(const Workflow& workflow);

    /// Starts a run and returns once it is durably recorded.
    /// Throws NotFound "[loom.workflow.unknown]" for a name (or version) neither
    /// added nor stored, and what check() throws for the workflow (a handler
    /// not registered, here or in a sub-workflow), InvalidArgument "[loom.payload.*]" for an input that is
    /// too deep, too large or not valid UTF-8, Conflict "[loom.run.key_reused]"
    /// (see StartOptions::idempotency_key); nothing is recorded then.
    RunId start(const std::string& workflow_name, const Json& input = Json::object(),
                const StartOptions& options = {});

    /// Blocks until the run is final and returns it as stored; a run another
    /// executor runs, or is about to (enqueued, or its lease ended or it was
    /// released less than a lease ago), is read from the store every
    /// control_poll. Throws NotFound "[loom.run.unknown]" for an unknown run,
    /// Conflict "[loom.run.not_live]" for any other unfinished run that no
    /// executor holds (recover() it), Conflict "[loom.executor.stopped]" if the
    /// executor was destroyed first, and what a commit of the run threw while
    /// running it: StoreError (e.g. "[loom.store.io]", "[loom.store.busy]") or
    /// Conflict "[loom.store.duplicate_attempt]". After a failed commit, the
    /// run is released: recover() or an adoption resumes it. A run whose lease
    /// this executor lost goes on elsewhere: wait() then reads the store.
    RunInfo wait(const RunId& id);
    /// As wait(), but gives up after timeout and returns nullopt.
    std::optional<RunInfo> wait_for(const RunId& id, std::chrono::milliseconds timeout);

    /// The run as stored now. Throws NotFound.
    RunInfo get_run(const RunId& id);
    /// Runs newest first, without per-step detail.
    std::vector<RunInfo> list_runs(const RunFilter& filter = {});
    /// The run's history in commit order. Throws NotFound.
    std::vector<RunEvent> history(const RunId& id);
    /// The log lines its handlers wrote (StepContext::log), as stored, in
    /// the order they were stored; only step `step_id`'s (with its
    /// elements') if not empty. Throws NotFound for an unknown run.
    std::vector<LogRecord> logs(const RunId& id, std::string_view step_id = {});
    /// Deletes the final runs that finished before `finished_before`, with
    /// their steps, elements, history and log lines, in transactions of up
    /// to 500 runs; returns how many it deleted. A child run (sub-workflow)
    /// whose parent is unfinished is kept: the parent still reads it. An
    /// idempotency key is free again once its run is deleted. Throws
    /// StoreError if the store fails (what was deleted before stays deleted).
    std::size_t purge(TimePoint finished_before);

    /// Asks the run to stop: nothing new starts, in-flight handlers see
    /// ctx.cancelled(), and the run ends "cancelled" once they return; its
    /// child runs (sub-workflow steps in flight) are cancelled too. The
    /// request is durable before cancel returns. Returns false if the run was
    /// already final. Throws NotFound.
    bool cancel(const RunId& id);

    /// Sends signal `name` to the run: a "wait" step waiting for it completes
    /// with `payload` as its output, and one not reached yet completes as soon
    /// as it is (the first signal of a name counts; the history keeps all).
    /// Durable before it returns, also for a run no process runs now (its
    /// recovery applies it). Returns false if the run is already final.
    /// Throws NotFound for an unknown run, InvalidArgument for an empty name
    /// or a payload over the limits, and InvalidArgument
    /// "[loom.signal.unknown]" for a name no wait step of the run's workflow
    /// waits for (the message lists the names it waits for, and a
    /// sub-workflow's step that waits for it: signal that child run), when
    /// every wait step's "signal" is a literal; one written as a ${...}
    /// reference could be any name, so the run then takes every signal.
    /// Nothing is recorded when it throws.
    bool signal(const RunId& id, const std::string& name, const Json& payload = nullptr);

    /// Finishes a suspended attempt (see StepContext::suspend()) with `output`,
    /// as if its handler had returned it; fail() as if it had thrown `error`
    /// (retried if the step's policy allows). `token` is the attempt's
    /// StepContext::completion_token(). Durable before it returns, also for a
    /// run no process runs now. A call made while the attempt's handler still
    /// runs (an outside system that answers before the handler returned)
    /// takes effect when the handler suspends; if it returns or throws
    /// instead, that result counts and the call is dropped. Throws
    /// InvalidArgument "[loom.token.malformed]", NotFound for an unknown run
    /// or step, Conflict "[loom.token.stale]" if that attempt is neither
    /// running nor suspended (it finished, timed out, or the run ended).
    void complete(const std::string& token, const Json& output);
    void fail(const std::string& token, const std::string& error);

    /// pause(): no new step of the run starts (steps in flight finish; a
    /// retry or sleep that comes due waits too) until resume(). Both are
    /// durable before they return, also for a run no process runs now, and
    /// return false if the run is already final. A paused run still fails at
    /// its deadline and can be cancelled. Throw NotFound for an unknown run.
    bool pause(const RunId& id);
    bool resume(const RunId& id);

    /// Operator controls for a run that is over (completed, failed or
    /// cancelled), not being compensated or run anywhere. Both make it
    /// "running" again, durably, and return once that is recorded; completed
    /// steps upstream keep their outputs and do not run again.
    ///
    /// retry(): the failed steps, and those never reached (cancelled), run
    /// again (each with its full retry policy).
    /// rerun(): `step_id` and everything downstream of it run again, even if
    /// completed, and so do the steps never reached (cancelled).
    ///
    /// Throw NotFound for an unknown run or step, Conflict "[loom.run.not_final]"
    /// for a run still running, "[loom.run.compensated]" for a run whose
    /// steps were compensated, "[loom.run.definition_changed]" as recover().
    void retry(const RunId& id);
    void rerun(const RunId& id, const std::string& step_id);

    /// Claims and resumes the unfinished runs in the store that no live
    /// executor holds (released, lease expired, left by a process of this
    /// host that is gone, or stored under this executor's own identity) and
    /// that this executor can run, and returns their ids; a run another
    /// executor holds is never taken, and enqueued runs are left to the
    /// workers' claims unless ExecutorOptions::adopt is off
    /// (docs/10-processes.md). Completed steps keep their
    /// outputs. An attempt stored "running" (in flight when its process
    /// stopped) counts as a failed attempt, "[loom.step.interrupted]": the
    /// step runs again only if its retry policy leaves it an attempt, else it
    /// fails and its on_error applies (for_each elements alike, each on its
    /// own). The default max_attempts is 1: a step without a retry policy
    /// fails rather than running again. An attempt whose start was never
    /// stored runs again under the same number. The first attempt of each step
    /// stored ready, waiting or running (of a for_each step: its first
    /// max_parallel elements) commits its start before its handler runs, so a
    /// handler that kills its process on every attempt costs at most
    /// max_attempts + 1 crashes. Runs whose
    /// cancellation was requested end cancelled. Runs of a workflow whose
    /// handlers are not all registered here (or whose definition exceeds this
    /// executor's limits) are left to other executors, and an Observer::on_log
    /// warning names the workflow and why. Throws Conflict
    /// "[loom.run.definition_changed]" before resuming anything if a run's
    /// stored definition no longer matches the hash it started with (every
    /// claim is released then).
    std::vector<RunId> recover();

private:
    friend struct detail::ExecutorAccess;   // the testing kit's hooks (internal)
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom
