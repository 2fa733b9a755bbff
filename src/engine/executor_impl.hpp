// Executor internals shared by the engine's .cpp files. Internal.
//
// Lock order, outermost first:
//   1. a run's mutex (RunState::mutex);
//   2. the commit queue's, which a CommitQueue::Queue holds for its life;
//   3. leaves, which call out with nothing of theirs held: the live runs, the
//      concurrency limits, the in-flight count, the worker pool's queue, the
//      timer queue, the workflow cache (it reads the store without its own
//      mutex, but possibly under a run's: a refused signal's hint);
//   4. a store's own locks.
// The key gate is taken with no lock held.
#pragma once

#include <cstdint>
#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <loom/events.hpp>
#include <loom/executor.hpp>

#include "engine/commit_queue.hpp"
#include "engine/in_flight.hpp"
#include "engine/key_gate.hpp"
#include "engine/lease_keeper.hpp"
#include "engine/limits.hpp"
#include "engine/live_runs.hpp"
#include "engine/run_state.hpp"
#include "engine/workflow_cache.hpp"
#include "handlers/invoke.hpp"
#include "engine/task.hpp"
#include "runtime/timer_queue.hpp"

namespace loom::detail {

class Expression;

/// Stands in for sub-workflow steps instead of child runs: how the testing
/// kit mocks a "workflow:NAME" step (WorkflowHarness::mock).
class ChildStandIn {
public:
    virtual ~ChildStandIn() = default;
    /// Whether step `step` of `workflow` is stood in for now: its child
    /// workflow is then neither checked nor started. Any thread.
    virtual bool covers(const Workflow& workflow, std::uint32_t step) const = 0;
    /// The step's outcome instead of a child run's: an output, or a
    /// non-empty error (the step fails for good, as when a child fails).
    /// `input` is the step's resolved input. A worker thread; no lock held.
    virtual std::pair<Json, std::string> outcome(const RunId& run, const Workflow& workflow,
                                                 std::uint32_t step, const Json& input) = 0;
};

/// What the library's own tools may do to an Executor that hosts may not.
struct ExecutorAccess {
    /// Set before the first start() or recover(); `stand_in` must outlive the
    /// executor. Null: none (the default).
    static void set_child_stand_in(Executor& executor, ChildStandIn* stand_in);
};

}  // namespace loom::detail

namespace loom {

using detail::CommitWaiter;
using detail::Effects;
using detail::Mutex;
using detail::MutexLock;
using detail::Outcome;
using detail::RunState;
using detail::StepChange;
using detail::StepHandlers;
using detail::Task;

struct Executor::Impl {
    Impl(Store& store, HandlerRegistry& handlers, ExecutorOptions options);
    ~Impl();

    // --- scheduler.cpp ---
    /// One attempt of one step, as claim() started it.
    struct Attempt {
        int number = 1;
        std::shared_ptr<std::atomic<bool>> flag;   // set when it times out
        std::optional<TimePoint> deadline;         // its timeout or the run's deadline
        /// Set for an exact attempt (AttemptSlot::exact): its start is queued
        /// for commit, and the handler may run only once that is committed.
        std::unique_ptr<CommitWaiter> start_commit;
        bool must_lead = false;   // the claiming thread leads that commit
    };

    /// The commit queue, held by one thread to add one change (see CommitQueue::Queue).
    using Queue = detail::CommitQueue::Queue;

    /// The task's attempt is over: it is in flight no more, and frees its
    /// concurrency-limit slots, dispatching a task parked on each.
    void end_flight(const Task& task);
    /// A stopping run's tasks parked by a concurrency limit are dispatched (to end).
    void unpark_limited(const RunState& run) LOOM_REQUIRES(run.mutex);
    /// Calls the handler of a claimed attempt once its start may run (await_start).
    Outcome call(const Task& task, Attempt& attempt);
    /// Runs a task and the tasks that follow it on this thread.
    void run_task(Task& task);
    /// What a worker runs next. It commits first unless there is more queued
    /// work for it and the pending batch is still small and young: while steps
    /// are waiting to run, running them first makes bigger transactions.
    Task next_task();
    /// For an idle worker: commits what is pending, if no one else is.
    bool lead_if_idle();
    /// Commits pending changes until none is left. `held` (workers only)
    /// receives one ready step to run next; host threads lead one round and
    /// hand on to a worker.
    void lead(Task* held);

    // --- transitions.cpp (run mutex held unless said otherwise) ---
    /// The clock's time, to the millisecond (what stores record).
    TimePoint now() const;
    /// The failed result of an attempt that ran past its timeout.
    static Outcome timed_out(std::chrono::milliseconds timeout);
    /// When the retry after failed attempt `attempt` is due: its backoff, jittered.
    static TimePoint retry_at(const RetryPolicy& retry, int attempt, TimePoint failed_at);
    /// Marks the step running and starts an attempt (arming its timeout), or
    /// returns nullopt if the run is stopping. Takes the run mutex.
    std::optional<Attempt> claim(const Task& task);
    /// A task that could start waits: parked while its run is paused, or
    /// until a concurrency limit frees a slot. Run mutex held.
    bool held_back(RunState& run, const Task& task) LOOM_REQUIRES(run.mutex);
    /// Starts attempt slot.attempts + 1: marks `slot` (a step's or an
    /// element's) running, arms its timeout (if the step has one) and makes its
    /// cancel flag, then has its start recorded (note_start). Run mutex held.
    Attempt begin_attempt(const Task& task, detail::AttemptSlot& slot) LOOM_REQUIRES(task.run->mutex);
    /// How an attempt's start reaches the store. An exact one is queued now
    /// and awaited before its handler runs (await_start). Any other is
    /// written lazily: with its result if it returns first, else by the next
    /// commit, which flush_starts() forces within kStartFlushDelay. Either
    /// way, no commit is added per step. `began` is the attempt's start.
    /// Run mutex held.
    void note_start(const Task& task, Attempt& attempt, TimePoint began) LOOM_REQUIRES(task.run->mutex);
    /// Before an exact attempt's handler runs: waits until its start is
    /// committed. False if that commit failed (the run is abandoned; the
    /// attempt must end without running). No lock held.
    bool await_start(Attempt& attempt);
    /// Commits the starts of attempts still running that no commit carried
    /// yet, once the oldest of them began kStartFlushDelay ago; re-arms
    /// itself for that moment if it comes earlier.
    void flush_starts();
    /// A handler logged its attempt's `line`th line: observers hear it, and
    /// the first kMaxStoredLogLines (cut to kMaxStoredLogBytes), then one
    /// line saying the rest were not, are queued to be stored.
    void handler_logged(const LogRecord& record, int line);
    /// The periodic purge (ExecutorOptions::retention): deletes what is
    /// older, reports a failure instead of throwing.
    void purge_expired();
    /// Executor::purge.
    std::size_t purge(TimePoint finished_before);
    /// The error of attempt `number`, in flight when its process stopped.
    static std::string interrupted(int number);
    // An attempt ends in the same steps, for a step or an element:
    // attempt_returned (item_returned) takes the run mutex; accept_outcome
    // drops a stale outcome or stops the attempt's timeout; close_attempt
    // stamps its end; apply_outcome (apply_item_outcome) says what it means
    // for the step; end_run_if_over looks at the run as a whole. Then, with
    // no lock, end_flight gives back its limit slots and in-flight count.
    // The parts that steps and for_each elements share take their
    // AttemptSlot; the run mutex is held.
    /// Attempt `number` returned: false (logged, its outcome discarded) if it
    /// was given up already; else its timeout timer and cancel flag go.
    bool accept_outcome(const RunState& run, std::uint32_t step, std::optional<std::uint32_t> item, detail::AttemptSlot& slot,
                     int number) LOOM_REQUIRES(run.mutex);
    /// Sets finished_at; a result that came at or past the timeout is a timeout.
    void close_attempt(const RunState& run, std::uint32_t step, detail::AttemptSlot& slot, Outcome& result) LOOM_REQUIRES(run.mutex);
    /// A failed attempt: true if the retry policy gives another and the run
    /// goes on; the slot then waits for its backoff (armed once committed).
    bool wait_to_retry(const RunState& run, std::uint32_t step, detail::AttemptSlot& slot, const Outcome& result, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// A running attempt given up at the run's deadline: failed at `at`, its handler signalled.
    void give_up(detail::AttemptSlot& slot, TimePoint at);
    /// Arms the timer of a waiting (or suspended) slot once its wait is committed.
    void arm_wait(const std::shared_ptr<RunState>& run, std::uint32_t step, std::optional<std::uint32_t> item,
                  detail::AttemptSlot& slot) LOOM_REQUIRES(run->mutex);
    /// What every StepContext of this attempt carries: ids, clock, log sink.
    detail::StepContextParams context_params(const RunState& run, std::uint32_t step, int attempt);
    /// Calls the handler (for element `item` of a for_each); no exception
    /// leaves it. No lock.
    Outcome call_handler(RunState& run, std::uint32_t step, const Attempt& attempt,
                        std::optional<std::uint32_t> item = std::nullopt);
    /// Attempt `number` of a step returned: complete and release dependents,
    /// wait to retry, or fail. A result for an attempt already given up
    /// (timed out, past the deadline) is discarded. Takes the run mutex.
    void attempt_returned(const std::shared_ptr<RunState>& run, std::uint32_t step, int number,
                        Outcome&& result);
    /// What an attempt's outcome means: complete, suspend, wait to retry, or
    /// fail. The attempt is no longer counted active; finished_at is set.
    void apply_outcome(RunState& run, std::uint32_t step, Outcome&& result, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// The step's last attempt failed (slot.error set): marks it failed and
    /// applies its on_error policy. Returns true if it settled (the run goes on).
    bool fail_step(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// A step whose dependencies all settled: skipped (a dependency skipped,
    /// or its condition false), failed (its condition could not be evaluated)
    /// or made ready. Returns true if it settled at once.
    bool admit(RunState& run, std::uint32_t step, Queue& queue, bool write_ready) LOOM_REQUIRES(run.mutex);
    bool condition_holds(const RunState& run, const detail::Expression& when) const LOOM_REQUIRES(run.mutex);
    /// `step` settled: admits the dependents it was the last to wait for, and
    /// theirs in turn when they settle at once.
    void release_dependents(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Nothing new starts; the first reason given is the run's outcome.
    void stop_run(RunState& run, RunStatus outcome, std::string error) LOOM_REQUIRES(run.mutex);
    /// Queues the final run write if the run is finished.
    void end_run_if_over(RunState& run, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Queues a step's current state.
    void write_step(RunState& run, std::uint32_t step, Batch& writes) LOOM_REQUIRES(run.mutex);
    /// Queues a step's current state and, if `event` is set, the history
    /// event at `at` that records its change, which observers are told of
    /// once it is committed (tell).
    void record_step(RunState& run, std::uint32_t step, Queue& queue, const char* event,
                     TimePoint at = {}, std::string detail = {}) LOOM_REQUIRES(run.mutex);
    /// Observers will hear of the change of `slot` (the step's, or that of
    /// element `item`) recorded by history event `kind`, once the
    /// writes queued on `queue` are durable. Not a start: those are mostly
    /// written lazily (record_starts), and are not told. No-op without an observer.
    void tell(std::uint32_t step, std::optional<std::uint32_t> item, const detail::AttemptSlot& slot, const char* kind,
              const std::string& detail, Queue& queue);
    /// The run ends other than completed: steps not finished (never started,
    /// or waiting, suspended) are cancelled, recorded at `at`.
    void cancel_unfinished(RunState& run, Queue& queue, TimePoint at) LOOM_REQUIRES(run.mutex);
    /// Queues the running attempt's start event unless it is written.
    void record_start(RunState& run, std::uint32_t step, Batch& writes) LOOM_REQUIRES(run.mutex);
    /// Queues the start of `task`'s running attempt: the step's row and its
    /// step.started event, or the element's row: note_start's exact starts and
    /// record_starts' lazy ones. A start not written when its attempt ends goes
    /// with its result instead (record_start for a step; an element's one row
    /// carries both). Run mutex held.
    void write_start(RunState& run, const Task& task, Batch& writes) LOOM_REQUIRES(run.mutex);
    /// Arms the run's deadline and the timers of its waiting steps (a retry's
    /// backoff, a sleep) not armed yet. Takes the run mutex.
    void arm_timers(const std::shared_ptr<RunState>& run, std::uint64_t committed);
    // Timer callbacks (timer thread, no lock held).
    /// Commits what a timer callback queued, on the timer thread if no one leads.
    void commit_from_timer();
    /// A waiting step's (or element's) time came: it is made ready; a
    /// suspended step's timeout fails it.
    void on_wake(const std::weak_ptr<RunState>& run, std::uint32_t step, std::optional<std::uint32_t> item,
                 int number, TimePoint at);
    /// Attempt `number` of the step (or element) ran past its timeout: it fails.
    void on_timeout(const std::weak_ptr<RunState>& run, std::uint32_t step, std::optional<std::uint32_t> item,
                    int number, std::chrono::milliseconds timeout);
    void on_deadline(const std::weak_ptr<RunState>& run);
    /// The run passed its deadline: it fails, attempts in flight are given up.
    /// Run mutex held; no effect the second time.
    void expire(const std::shared_ptr<RunState>& run) LOOM_REQUIRES(run->mutex);

    // --- signals.cpp (suspended steps, signals, completion tokens) ---
    /// A "wait" step reached: completed at once if its signal came already,
    /// else suspended until it comes (or its timeout). Run mutex held.
    bool admit_wait(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// The signal name a "wait" step waits for (its resolved input's "signal").
    /// Throws InvalidArgument "[loom.wait.input]".
    std::string awaited_signal(const RunState& run, std::uint32_t step) const LOOM_REQUIRES(run.mutex);
    /// Throws InvalidArgument "[loom.signal.unknown]" if run `id` of `wf`
    /// cannot be waiting for signal `name` (see Executor::signal).
    void check_signal(const Workflow& wf, const RunId& id, const std::string& name);
    /// Finishes the suspended attempt of `step` with `result`, queued on
    /// `queue` (made for this run); run mutex held.
    void resume(RunState& run, std::uint32_t step, Outcome&& result, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Reads the signals and completion requests in a recovered run's history
    /// (only if it can have any). The run is not live yet, or its mutex is held.
    void load_deliveries(RunState& run) LOOM_REQUIRES(run.mutex);
    /// Whether the run's history can hold signals or completions it needs:
    /// it has a wait step or a suspended step. Run mutex held, or not live.
    static bool may_have_deliveries(const RunState& run) LOOM_REQUIRES(run.mutex);
    /// Adds the signals and completion requests among `events` that the run
    /// does not know yet (the first of each counts). Returns true if any was new.
    static bool merge_deliveries(RunState& run, const std::vector<RunEvent>& events) LOOM_REQUIRES(run.mutex);
    /// Completes suspended steps whose signal or completion is known (at
    /// launch, for what came while the run was not live; from poll_deliveries,
    /// for what another process recorded). At launch, suspended sub-workflow
    /// steps are also sent to find or start their child. Run mutex held.
    void apply_deliveries(RunState& run, Queue& queue, bool at_launch) LOOM_REQUIRES(run.mutex);
    /// Every ExecutorOptions::delivery_poll: live runs with a step suspended
    /// for a signal or a completion read their history for ones recorded by
    /// another process, and apply them. Timer thread; re-arms itself.
    void poll_deliveries();
    void arm_delivery_poll();
    /// What a host call asks of one run (cancel, pause, resume, a signal, a
    /// completion), for the run live here and for the run only in the store.
    struct RunRequest {
        /// The live run, its mutex held: the call's result if there is
        /// nothing to do (the run is final, or already as asked), else
        /// nullopt and apply_live follows. May throw; nothing is queued yet.
        std::function<std::optional<bool>(RunState&)> check_live;
        /// Queues the request's writes and effects for the live run, run
        /// mutex held. `recorded`: the store has the request already (the run
        /// was made live after record() wrote it).
        std::function<void(RunState&, Queue&, bool recorded)> apply_live;
        /// The stored run, not live here: the call's result if there is
        /// nothing to do, else nullopt and record follows. May throw.
        std::function<std::optional<bool>(const RunInfo&)> check_stored;
        /// Queues the writes that record the request for whoever runs the run next.
        std::function<void(const RunInfo&, Queue&)> record;
    };
    /// Carries out `request` on run `id` and returns once it is durable: on
    /// the live run if this executor runs it; else recorded in the store and,
    /// if a recover() that read the run before that made it live meanwhile,
    /// applied to the live run too. The one place that knows a run is either
    /// live here or only in the store. Throws NotFound "[loom.run.unknown]",
    /// what the checks throw, and what the commit throws.
    bool request(const RunId& id, const RunRequest& request);
    /// request() on the live run `run`.
    bool request_live(const std::shared_ptr<RunState>& run, const RunRequest& request, bool recorded);
    /// Records and applies a signal or a completion request (see request()):
    /// `check_live` and `check_stored` may throw; `apply` queues its effect on
    /// the live run. Returns false (recording nothing) if the run is final.
    bool deliver(const RunId& id, RunEvent event, const std::function<void(RunState&)>& check_live,
                 const std::function<void(RunState&, Queue&)>& apply,
                 const std::function<void(const RunInfo&)>& check_stored);
    /// complete() and fail(): error empty for complete.
    void finish_by_token(const std::string& token, Json output, std::string error);

    // --- children.cpp (sub-workflows) ---
    /// A "workflow:NAME" step reached: suspended; its child run is started
    /// once this is committed. Run mutex held.
    bool admit_child(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Starts a child run (start_child) or finishes its parent's step from it
    /// (child_done). Worker thread, no lock.
    void run_child_task(const Task& task);
    /// A run just became final: if it is a child, its parent's step is told.
    void notify_parent(const RunState& child);
    /// The id of the child run of step `step` of run `parent`, a run of `wf`:
    /// the one place it is made (notify_parent reads it back).
    static RunId child_run_id(const RunId& parent, const Workflow& wf, std::size_t step);
    /// The run stops: its child runs still going are cancelled (by workers;
    /// their results can no longer be used). Run mutex held.
    void cancel_children(RunState& run) LOOM_REQUIRES(run.mutex);

    // --- fan_out.cpp (for_each steps; run mutex held unless said otherwise) ---
    /// A recovered for_each step's stored elements; before the run is live.
    void load_items(RunState& run, std::uint32_t step, const StepInfo& stored) LOOM_REQUIRES(run.mutex);
    /// retry(): the step's elements that did not complete get their full retry policy again.
    void fresh_item_budget(RunState& run, std::uint32_t step) LOOM_REQUIRES(run.mutex);
    /// A for_each step reached: resolves its array and starts its elements
    /// (those not completed before). Returns true if it settled at once.
    bool admit_fan_out(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Starts elements while max_parallel allows; settles the step when
    /// nothing of it is busy and it is done, failed or its run stops.
    /// Returns true if it settled and its dependents may go on.
    bool advance_fan_out(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// A stopping run: elements waiting for a retry are dropped, and its
    /// for_each steps with nothing running settle.
    void wind_down_fans(RunState& run, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Elements of the step that are queued, parked or waiting for a retry
    /// will not start (the step fails, or its run stops): no longer busy.
    void release_idle_items(RunState& run, std::uint32_t step) LOOM_REQUIRES(run.mutex);
    /// An element failed for good (`error`): the step fails once its running
    /// elements have returned; nothing new starts.
    void fail_fan_out(RunState& run, std::uint32_t step, std::uint32_t index, const std::string& error) LOOM_REQUIRES(run.mutex);
    /// Starts an attempt of one element, or returns nullopt. Takes the run mutex.
    std::optional<Attempt> claim_item(const Task& task);
    /// An element's attempt returned (as attempt_returned). Takes the run mutex.
    void item_returned(const Task& task, int number, Outcome&& result);
    /// Queues element `index`'s state and the history event that records its
    /// change ("element.completed", ...), which observers are told of.
    void record_item(RunState& run, std::uint32_t step, std::uint32_t index, Queue& queue, const char* event) LOOM_REQUIRES(run.mutex);
    /// What an element attempt's outcome means: complete, wait to retry, or
    /// fail the step. Returns true if the step settled and its dependents may go on.
    bool apply_item_outcome(RunState& run, std::uint32_t step, std::uint32_t item, Outcome&& result, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Nothing of the step is busy and nothing is recorded (the executor is
    /// shutting down, or the run was abandoned): it stops counting as active.
    void quiet_item_end(const std::shared_ptr<RunState>& run, std::uint32_t step) LOOM_REQUIRES(run->mutex);
    /// The wait set now in `slot` (a step's or an element's) may be armed once the
    /// writes queued on `queue` are committed, not before. Run mutex held.
    static void wait_after_commit(detail::AttemptSlot& slot, Queue& queue) {
        slot.wait_seq = queue.effects().run_seq;
        queue.effects().arm_timers = true;
    }
    /// The run passed its deadline: the step's running elements are given up.
    void give_up_items(RunState& run, std::uint32_t step, Queue& queue, TimePoint at) LOOM_REQUIRES(run.mutex);

    // --- compensation.cpp (saga) ---
    /// Starts undoing the run's completed steps, latest first; run mutex held.
    void begin_compensation(RunState& run, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Visits `work` (steps whose dependents are all undone or passed): a
    /// completed step with a compensation is queued to be undone, any other
    /// passes, releasing its own dependencies in turn. Run mutex held.
    void walk_compensation(RunState& run, std::vector<std::uint32_t> work, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Claims, calls and records one compensation attempt.
    void run_compensation(const Task& task);
    /// Adds start writes for attempts in `started` that are still running.
    void record_starts(std::vector<Task>& started, Batch& batch);
    /// Queues element `index` of for_each step `step` as it is now.
    static void write_item(RunState& run, std::uint32_t step, std::uint32_t index, Batch& writes) LOOM_REQUIRES(run.mutex);
    /// A for_each step that ends unfinished: its elements the store has as
    /// pending or waiting become cancelled, so that no row of a final run
    /// looks as if it may still start.
    void cancel_items(RunState& run, std::uint32_t step, Queue& queue) LOOM_REQUIRES(run.mutex);
    /// Applies a committed batch's effects.
    void apply(Effects& effects);
    /// Tells the observer of a durable commit of `batch` that took `took`.
    void tell_commit(const Batch& batch, std::chrono::steady_clock::duration took);
    /// Drops the live state of runs whose commit failed; the store is the truth.
    void abandon(std::vector<Effects>& effects, std::vector<Task>& ready,
                 const std::exception_ptr& failure);
    /// A task made ready whose commit failed: it will not run, and stops
    /// counting (in RunState::active or compensations, or its fan-out's busy). Takes the run mutex.
    void drop_ready(const Task& task);
    /// Removes what `runs` (just abandoned) queued behind the failed batch:
    /// their writes, effects and ready steps. Their waiters get `failure`.
    void drop_pending(const std::vector<std::shared_ptr<RunState>>& runs,
                      const std::exception_ptr& failure);
    /// For host threads, after Queue::release() without the run mutex: leads
    /// if told to, then waits for the commit.
    void await_commit(bool must_lead, CommitWaiter& waiter);
    template <typename Call>
    void notify(Call&& call) {
        if (!options_.observer) return;
        try {
            call(*options_.observer);
        } catch (...) {
            // An observer never breaks a run; what it throws is dropped.
        }
    }
    /// Tells observers a message of the executor's own, stamped now().
    void report(LogRecord record) {
        if (!options_.observer) return;
        record.at = now();
        notify([&](Observer& o) { o.on_log(record); });
    }

    // --- executor.cpp ---
    /// Throws NotFound "[loom.handler.unknown]" for a step's handler or
    /// compensation handler that is not registered, "[loom.workflow.unknown]"
    /// for a sub-workflow neither added nor stored.
    StepHandlers resolve_handlers(const Workflow& wf, const RunId& run);
    /// The definition stored run `run` started with. Throws Conflict
    /// "[loom.run.definition_changed]" if that version's stored content has
    /// another hash now, and what WorkflowCache::find throws.
    std::shared_ptr<const Workflow> definition_of(const RunInfo& run);
    /// resolve_handlers(wf), and Executor::check() of every sub-workflow down
    /// the tree, each once; an error names the "workflow:" steps that led to it.
    StepHandlers resolve_tree(const Workflow& wf);
    /// A "workflow:NAME" step whose child run a ChildStandIn replaces.
    bool stood_in(const Workflow& wf, std::uint32_t step) const;
    /// Builds live state from a stored run (fresh or recovered): statuses,
    /// what each step waits for, which steps are ready, whether it is over.
    /// recover() read the run (`read`) before it was live: applies what the
    /// store got since (`latest`, `events`, read once it was live) from host
    /// threads that found it not live: cancel, pause, resume, signals,
    /// completions. Later ones find it live. Run mutex held.
    void catch_up(RunState& run, const RunInfo& read, const RunInfo& latest, const std::vector<RunEvent>& events) LOOM_REQUIRES(run.mutex);
    std::shared_ptr<RunState> make_state(const RunInfo& info, std::shared_ptr<const Workflow> wf,
                                         StepHandlers handlers);
    /// Makes a run live and queues its first commit: the new run (`fresh`) or
    /// the steps whose state differs from `stored`, its ready steps, `event`.
    /// Returns once committed (false, doing nothing, if the run is already
    /// live); throws what the commit threw.
    bool launch(const std::shared_ptr<RunState>& run, const RunInfo& stored, bool fresh,
                const char* event, const RunWrite* reopen = nullptr);
    /// pause() and resume(): false if the run is final.
    bool set_paused(const RunId& id, bool paused);
    /// retry() and rerun(): makes a final run running again with the steps
    /// `reset` chooses put back to pending (outputs and errors cleared);
    /// their for_each elements are kept (`keep_items`) or deleted.
    void reopen(const RunId& id, const char* event, bool keep_items,
                const std::function<std::vector<std::uint32_t>(const Workflow&, const RunInfo&)>& reset);
    /// A new run's row, every step pending; `id` empty: a new id.
    RunInfo new_run(const Workflow& wf, const Json& input, const std::string& idempotency_key, RunId id,
                    int priority) const;
    /// Records a run nobody owns, for any executor with its handlers to
    /// claim (StartOptions::enqueue); returns once it is durable.
    RunId enqueue_run(const Workflow& wf, const Json& input, const std::string& idempotency_key, int priority);
    /// Creates, records and starts a run; returns once it is durable.
    RunId start_run(std::shared_ptr<const Workflow> wf, StepHandlers handlers,
                    const Json& input, const std::string& idempotency_key, RunId id = {},
                    int priority = 0);
    /// Executor::cancel(): also cancels the run's child runs before it returns.
    bool cancel_run(const RunId& id);
    /// What cancel asks of a run; the child runs to cancel with it are
    /// appended to `children` (cancel_children) as the request finds them.
    RunRequest cancel_request(const RunId& id, std::vector<RunId>& children);
    void cancel_children(const std::vector<RunId>& children);
    /// What pause (`paused`) or resume asks of a run; a resume hands the
    /// run's parked tasks to `parked`, to dispatch once it is durable.
    RunRequest pause_request(const RunId& id, bool paused, std::vector<Task>& parked);
    /// Sets ctx.cancelled() for every in-flight attempt (shutdown grace over).
    void cancel_attempts();

    // --- ownership.cpp (no lock held) ---
    /// Fencing: the round's batch is written as this executor's, and each run
    /// it writes for (live here) must be its own in the store.
    void fence(detail::CommitQueue::Round& round);
    /// The LeaseKeeper's renewal: extends the leases of the live runs; runs
    /// another executor took over are abandoned, and all of them once the
    /// leases ran out without a renewal.
    void renew_leases();
    /// Abandons every live run (its results are dropped): `why` says why.
    void give_up_all(const std::string& why);
    /// Abandons `runs` here: they stop, results and queued writes dropped,
    /// `failure` for their waiters, `message` logged; then they are released.
    void abandon_runs(const std::vector<std::shared_ptr<RunState>>& runs, const std::exception_ptr& failure,
                      const std::string& message);
    /// Gives `ids` up in the store so anyone may adopt them at once; a
    /// failure is logged (their leases run out instead).
    void release(const std::vector<RunId>& ids);
    /// (name, version) of the stored workflows whose handlers are all
    /// registered and whose definitions are within the limits. `recovering`:
    /// warns of each other one that has unfinished runs.
    std::vector<std::pair<std::string, std::int64_t>> runnable_workflows(bool recovering);
    /// Claims the unfinished runs nobody holds that this executor can run
    /// (not enqueued ones, which claim_queued() takes, unless `recovering`
    /// without adoption) and returns those not live here. `recovering`: also runs stored as this identity's (an
    /// earlier life of it).
    std::vector<RunId> claim_runs(bool recovering);
    /// How many more runs background claims may take: max_claimed less the
    /// counted runs live here.
    std::size_t claim_room() const;
    /// Makes claimed runs live. `recovering` (recover()): if any cannot be,
    /// none is and it throws, every claim released; else that one is
    /// released and logged.
    /// `counted`: taken by a background claim, counted in claimed_held_.
    std::vector<RunId> adopt(const std::vector<RunId>& ids, bool recovering, bool counted = false);
    /// The LeaseKeeper's adoption round; errors are logged and retried.
    void adopt_orphans();
    /// Claims and runs enqueued runs (and any other free ones) this executor
    /// can run, at most as many as it has idle threads, every control_poll
    /// and after a run ends while the queue is busy; errors are logged and
    /// retried.
    void claim_queued();
    /// True for a run nobody has run a step of and nobody ever held: an
    /// enqueued one (a released run keeps its release time as its lease's
    /// end). wait() waits for its claim.
    static bool never_claimed(const RunInfo& run);
    /// True if the run was enqueued and no step of it has begun (one read).
    bool enqueued(const RunInfo& run);
    /// A run counted in claimed_held_ ended here (or was given up).
    void ended_claimed(RunState& run);
    /// A workflow was added here: claim_queued() finds the runnable ones again.
    void forget_runnable() {
        MutexLock lock(runnable_mutex_);
        runnable_.reset();
    }
    /// True if `why` is the lease lost to another executor, which runs the
    /// run on: a wait() for it goes on reading the store.
    static bool lost_to_another(const std::exception_ptr& why);
    /// True if another executor runs the run or is about to: it holds its
    /// lease, the run is enqueued, or its lease ended (or was released)
    /// less than a lease ago. wait() reads the store for such a run.
    bool in_other_hands(const RunInfo& run) const;
    /// The LeaseKeeper's look for requests other executors recorded for the
    /// runs this one runs (Store::controlled_runs); errors are logged and
    /// retried.
    void poll_controls();
    /// Brings live `run` up to its stored requests: cancel, pause or resume,
    /// signals and completions. True if writes were queued (to commit).
    bool apply_controls(const std::shared_ptr<RunState>& run);

    Store& store_;
    HandlerRegistry& handlers_;
    ExecutorOptions options_;
    const Clock& clock_;
    detail::LeaseKeeper leases_;   // stopped first by ~Impl: its threads use the rest
    std::int64_t control_mark_ = 0;   // Store::controlled_runs's mark; only the LeaseKeeper's polling thread
    std::atomic<bool> queue_busy_{false};   // the last claim_queued() took all it had room for
    std::atomic<std::size_t> claimed_held_{0};   // counted runs live here (max_claimed)
    // Held by recover(), an adoption round or a queue claim from its claim
    // until what it took is live here (or released): a run this executor
    // just claimed is never taken again by its own recover() as a run of an
    // earlier life of its identity. Taken with no other lock held.
    Mutex claiming_;
    Mutex runnable_mutex_;
    // runnable_workflows() as the last full claim found it: claim_queued()
    // reuses it rather than reading and checking every definition each poll.
    std::optional<std::vector<std::pair<std::string, std::int64_t>>> runnable_ LOOM_GUARDED_BY(runnable_mutex_);

    std::atomic<detail::ChildStandIn*> stand_in_{nullptr};   // see ExecutorAccess

    detail::WorkflowCache workflows_;
    detail::ConcurrencyLimits limits_;
    detail::KeyGate starting_keys_;   // idempotency keys being started
    detail::LiveRuns live_;

    detail::CommitQueue commits_;
    detail::CommitQueue::Round round_;   // only the leader touches it

    std::atomic<bool> stopping_{false};
    /// Shutdown's grace ran out and cancel_attempts() set ctx.cancelled():
    /// from then on a failure is taken for the handler giving up, not the
    /// step failing, and is not recorded. A failure within the grace is.
    std::atomic<bool> attempts_cancelled_{false};
    detail::InFlight in_flight_;   // attempts claimed and not yet finished; destruction waits for them
    detail::TimerQueue timers_;   // stopped first by ~Impl: its callbacks use the rest
    detail::WorkerPool pool_;   // last: its threads stop before the rest is destroyed
};

}  // namespace loom
