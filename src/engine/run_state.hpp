// The executor's in-memory state of one live run: what it needs to schedule
// steps without reading the store. Internal. The store stays the truth: this
// state is rebuilt from it by recover(), and dropped when a commit fails.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <loom/handler.hpp>
#include <loom/run.hpp>
#include <loom/workflow.hpp>

#include "engine/task.hpp"
#include "runtime/mutex.hpp"
#include "runtime/timer_queue.hpp"

namespace loom::detail {

/// How many of something are in progress: each remove() matches an earlier
/// add(), so it never goes below zero (an engine bug if it would: it stops
/// the process rather than let a run end early or never). Guarded by the
/// mutex of the run that holds it.
class Counter {
public:
    explicit Counter(std::size_t n = 0) noexcept : n_(n) {}
    void add() noexcept { ++n_; }
    /// Returns true if that was the last one.
    bool remove() noexcept {
        if (n_ == 0) broken();
        return --n_ == 0;
    }
    std::size_t count() const noexcept { return n_; }
    bool none() const noexcept { return n_ == 0; }

private:
    [[noreturn]] static void broken() noexcept {
        std::fputs("loom: internal error: a run's counter went below zero\n", stderr);
        std::abort();
    }
    std::size_t n_ = 0;
};

/// What a step and a for_each element have alike: the state of their
/// attempts. The verbs that start and end an attempt take this, whichever it is.
struct AttemptSlot {
    StepStatus status = StepStatus::pending;
    int attempts = 0;
    /// Attempts made before the run was retried or re-run: the retry policy
    /// counts from here.
    int attempt_base = 0;
    Json output;                        // a step's never changes once completed: inputs read it lock-free
    std::string error;
    std::optional<TimePoint> started_at;
    std::optional<TimePoint> finished_at;
    std::optional<TimePoint> wake_at;   // waiting: when the next attempt is due
    /// When it last became ready: the next attempt's wait for a commit, a
    /// worker or a concurrency slot starts here (StepEvent::ready_at).
    std::optional<TimePoint> ready_at;
    bool armed = false;                 // waiting or suspended: a timer will wake it
    /// The batch (RunState::queued_seq) that records the wait: its timer is
    /// armed only once that batch is committed (0: stored already).
    std::uint64_t wait_seq = 0;
    /// The running attempt's own cancel flag (set when it times out); shared
    /// with its StepContext, which may outlive the attempt's slot state.
    std::shared_ptr<std::atomic<bool>> attempt_flag;
    TimerQueue::Id timeout_timer = 0;   // 0: none
    /// Its next attempt commits its start before the handler runs: the first
    /// attempt after recover(), which may be the one that killed the last
    /// process before its (lazily written) start reached the store. For a
    /// for_each step: the first elements it dispatches (FanOut::exact_left).
    bool exact = false;

    /// It may start an attempt from `at` on (once what made it ready is committed).
    void make_ready(TimePoint at) {
        status = StepStatus::ready;
        ready_at = at;
    }
};

/// One element of a for_each step (status: pending, ready, running, waiting,
/// completed or failed).
struct ItemSlot : AttemptSlot {
    bool start_written = true;          // the running attempt's start is in the store
    bool stored = false;                // the store has a row for it
};

/// A for_each step's elements while it runs. The step counts once in
/// RunState::active from the moment it begins until it settles; its elements
/// count in `busy`, and it cannot settle while any is busy.
struct FanOut {
    Json elements;                 // the array, resolved when the step began
    std::vector<ItemSlot> items;   // by index; filled from the store on recovery
    bool begun = false;
    std::size_t next = 0;          // elements before it were dispatched or done
    Counter busy;                  // elements ready, running or waiting to retry
    std::size_t completed = 0;
    bool failed = false;           // an element failed for good: nothing new starts
    /// After recover(): this many more dispatched elements start exactly
    /// (ItemSlot::exact); they cover every element that can have been in
    /// flight when the last process stopped (at most max_parallel).
    std::size_t exact_left = 0;
};

struct StepSlot : AttemptSlot {
    Counter deps_left;                  // dependencies not yet settled
    std::string awaiting;               // suspended "wait" step: the signal it waits for
    // Compensation (saga), once the run compensates:
    Counter downstream_left;            // dependents not yet compensated or passed
    int compensation_attempts = 0;      // this process's tries of the undo
    std::unique_ptr<FanOut> fan;        // a for_each step's elements; null for others
    /// The next write of this step deletes its stored elements first (rerun).
    bool reset_items = false;
};

/// Whether `slot` has had every attempt `retry` allows: those since its budget
/// last started afresh (attempt_base), counting one a crash interrupted.
inline bool out_of_attempts(const AttemptSlot& slot, const RetryPolicy& retry) noexcept {
    return slot.attempts - slot.attempt_base >= retry.max_attempts;
}

/// The handlers a run uses, per step, fixed when it starts (or is recovered).
struct StepHandlers {
    std::vector<std::shared_ptr<StepHandler>> run;
    std::vector<std::shared_ptr<StepHandler>> compensate;   // null: no compensation
};

struct RunState : std::enable_shared_from_this<RunState> {
    RunId id;
    std::shared_ptr<const Workflow> workflow;
    StepHandlers handlers;
    Json input;
    int priority = 0;                                     // of its tasks; fixed at start
    std::optional<TimePoint> deadline_at;                 // the run fails when it passes
    TimerQueue::Id deadline_timer LOOM_GUARDED_BY(mutex) = 0;
    std::atomic<bool> cancel_flag{false};                 // read by StepContext
    /// Its first commit as this executor's is done: the store has it as
    /// ours, and lease renewals include it.
    std::atomic<bool> owned{false};
    /// Taken by a background claim (claim_queued, adopt_orphans): counts
    /// against max_claimed until it ends or is abandoned (ended_claimed
    /// clears it, once).
    std::atomic<bool> counted{false};
    /// Per step: false while a started attempt is not yet in the store. Written
    /// under mutex; read without it by the committer to skip most checks.
    std::vector<std::atomic<bool>> start_written;

    Mutex mutex;
    CondVar done_cv;   // `done` became true
    std::vector<StepSlot> steps LOOM_GUARDED_BY(mutex);
    /// Steps that are over for this run and let dependents go on: completed,
    /// skipped, or failed under OnError::proceed. Only ever added to.
    Counter settled LOOM_GUARDED_BY(mutex);
    /// Steps ready, running, waiting to retry or suspended, and for_each steps
    /// begun: the run is not over while any is.
    Counter active LOOM_GUARDED_BY(mutex);
    Counter fans_open LOOM_GUARDED_BY(mutex);               // for_each steps begun and not settled
    std::uint64_t queued_seq LOOM_GUARDED_BY(mutex) = 0;    // batches of writes queued for this run
    std::uint64_t committed_seq LOOM_GUARDED_BY(mutex) = 0; // the latest of them committed and applied
    bool stopping LOOM_GUARDED_BY(mutex) = false;           // failed or cancelled: start nothing new
    bool paused LOOM_GUARDED_BY(mutex) = false;             // Executor::pause(): ready steps wait in `parked`
    bool expired LOOM_GUARDED_BY(mutex) = false;            // its deadline passed and was acted on
    std::vector<Task> parked LOOM_GUARDED_BY(mutex);
    bool cancel_requested LOOM_GUARDED_BY(mutex) = false;
    RunStatus outcome LOOM_GUARDED_BY(mutex) = RunStatus::running;   // the final status once decided
    std::string error LOOM_GUARDED_BY(mutex);
    /// Signals received, by name: the first of each name counts (the history
    /// keeps every one). A "wait" step completes with its signal's payload.
    std::map<std::string, Json> signals LOOM_GUARDED_BY(mutex);
    /// Completions requested by token that no suspended step took yet: made
    /// while the run was not live (replayed at recovery), or while the
    /// attempt's handler still ran (taken when it suspends): (step, attempt)
    /// -> result.
    std::map<std::pair<std::uint32_t, int>, std::pair<Json, std::string>> requested LOOM_GUARDED_BY(mutex);
    /// A step under OnError::compensate failed: once nothing runs any more,
    /// completed steps are undone in reverse dependency order, then the run fails.
    bool compensate LOOM_GUARDED_BY(mutex) = false;
    bool compensation_begun LOOM_GUARDED_BY(mutex) = false;
    Counter compensations LOOM_GUARDED_BY(mutex);           // undos due or in flight
    std::vector<std::string> compensation_failures LOOM_GUARDED_BY(mutex);   // ids of steps whose undo failed
    bool final_submitted LOOM_GUARDED_BY(mutex) = false;    // the final run write is queued for commit
    bool done LOOM_GUARDED_BY(mutex) = false;               // final write committed, or run abandoned
    bool abandoned LOOM_GUARDED_BY(mutex) = false;          // a commit failed; the store is the truth now
    std::exception_ptr store_error LOOM_GUARDED_BY(mutex);  // why it was abandoned
    /// Observers were told it runs here (on_run_changed): abandoned, it is
    /// told given up; one whose first commit failed was never told either.
    bool told_live LOOM_GUARDED_BY(mutex) = false;
    /// The seq of the newest pause or resume in its history that the control
    /// poll acted on (Impl::apply_controls).
    std::int64_t controls_seen LOOM_GUARDED_BY(mutex) = 0;

    /// A for_each step begins: it counts in `active` and `fans_open` until it settles.
    void open_fan() noexcept LOOM_REQUIRES(mutex) {
        active.add();
        fans_open.add();
    }
    void close_fan() noexcept LOOM_REQUIRES(mutex) {
        active.remove();
        fans_open.remove();
    }
    bool all_settled() const noexcept LOOM_REQUIRES(mutex) { return settled.count() == steps.size(); }
    /// `steps` for a handler resolving its input, without the mutex: what the
    /// input reads (the outputs of settled dependencies, a begun for_each's
    /// elements) no longer changes, and the vector is sized once, when the run
    /// is made. The one read of `steps` the analysis is told to trust.
    const std::vector<StepSlot>& unlocked_steps() const noexcept LOOM_NO_TSA { return steps; }
};

}  // namespace loom::detail
