// The commit queue of the group commit: the writes waiting for the next
// transaction, what to do once it is durable, the tasks it makes ready, the
// attempt starts not yet written, and which thread commits them (the leader).
// Internal. The executor's scheduler decides when to commit and does it; this
// class keeps what is queued consistent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <loom/store.hpp>

#include "engine/run_state.hpp"
#include "engine/task.hpp"
#include "runtime/mutex.hpp"

namespace loom::detail {

/// A host thread blocked until its writes are committed (start, cancel, recover).
class CommitWaiter {
public:
    /// The commit is over; `e` is its error, or null. Any thread.
    void signal(std::exception_ptr e);
    /// Rethrows the commit's error.
    void wait();
    /// As wait(), but false if not committed within `timeout`.
    bool wait_for(std::chrono::milliseconds timeout);

private:
    Mutex mutex_;
    CondVar cv_;
    bool done_ LOOM_GUARDED_BY(mutex_) = false;
    std::exception_ptr error_ LOOM_GUARDED_BY(mutex_);
};

/// A change of a step or element as its writes recorded it, to be told to
/// observers (Observer::on_step_changed) once they are durable. Made only
/// when there is an observer.
struct StepChange {
    std::uint32_t step = 0;
    std::optional<std::uint32_t> item;
    StepStatus status = StepStatus::pending;
    int attempt = 0;
    Json output;                     // completed: a copy, since the slot's may move on
    std::string error;
    std::optional<TimePoint> started_at, finished_at, wake_at, ready_at;
    const char* kind = "";           // the history event's
    std::string detail;
};

/// What to do about a run once a batch holding its writes is durable.
struct Effects {
    std::shared_ptr<RunState> run;               // null: only a waiter to wake
    std::vector<StepChange> changes;             // tell observers, in order
    bool arm_timers = false;                     // arm the run's deadline and its waiting steps
    std::uint64_t run_seq = 0;                   // RunState::queued_seq of these writes
    /// The run is live here from these writes on: the history kind of how
    /// it came (event::run_started, run_recovered, ...); null if it was before.
    const char* run_began = nullptr;
    /// The run ended with these writes: its outcome and error as written, so
    /// that observers hear them without taking the run's lock again.
    struct Ending {
        RunStatus outcome = RunStatus::completed;
        std::string error;
        const char* kind = "";   // its history event's
    };
    std::optional<Ending> run_finished;
    CommitWaiter* waiter = nullptr;
    /// Where the writes queued with these effects start in the pending batch;
    /// they end where the next Effects' start. Lets a failed commit drop what
    /// its runs queued behind it.
    std::size_t new_runs_from = 0, steps_from = 0, items_from = 0, runs_from = 0, events_from = 0;
};

/// Thread safety: any thread. Lock order: a run's mutex, then this queue's.
/// The holder of a Queue may take the leaf locks (executor_impl.hpp) with it
/// held; the queue itself calls nothing out.
class CommitQueue {
public:
    /// The queue, held by one thread to add one change: its writes, effects and
    /// ready tasks go straight into the pending batch. Hold it with the run's
    /// mutex held (if there is a run), so that a run's writes queue in the
    /// order they were made.
    class Queue {
    public:
        Queue(CommitQueue& queue, std::shared_ptr<RunState> run, CommitWaiter* waiter = nullptr) LOOM_NO_TSA;
        // The analysis cannot see that a Queue holds queue_.mutex_ for its life.
        Batch& writes() LOOM_NO_TSA { return queue_.pending_; }
        Effects& effects() LOOM_NO_TSA { return queue_.effects_.back(); }
        /// Dispatch `step` once the batch is committed.
        void ready(std::uint32_t step, Task::Kind kind = Task::Kind::step) LOOM_NO_TSA {
            queue_.ready_.push_back(Task{run_, step, kind, run_->priority});
        }
        /// Dispatch element `item` of for_each step `step` once committed.
        void ready_item(std::uint32_t step, std::uint32_t item) LOOM_NO_TSA {
            queue_.ready_.push_back(Task{run_, step, Task::Kind::item, run_->priority, item});
        }
        /// Releases the queue. With `claim`, takes the leader's role if it is
        /// free and returns true: the caller must then lead.
        bool release(bool claim) LOOM_NO_TSA;

    private:
        CommitQueue& queue_;
        std::shared_ptr<RunState> run_;
        MutexLock lock_;
    };

    /// What one leader commits in one round, taken from the queue whole. The
    /// leader keeps it between rounds so that its buffers' capacity is reused.
    struct Round {
        Batch batch;
        std::vector<Effects> effects;
        std::vector<Task> started;   // attempts whose starts may still be unwritten
        std::vector<Task> ready;
    };

    /// Takes the leader's role if no one has it and something is pending.
    bool claim();
    /// The leader takes everything pending into `round` (emptied first). If
    /// nothing is pending, it gives up the role instead and returns false.
    bool take(Round& round);
    /// A leader that commits one round only (a host thread) gives up the role;
    /// true if more is pending, which someone must then lead.
    bool hand_off();
    /// True when the pending batch should be committed now rather than grow:
    /// it is large or old. Reads no lock.
    bool due() const;

    /// An attempt began at `began` and its start is not written: the next
    /// round takes it (Round::started). Returns when the starts must be
    /// flushed if no commit carries them first, if no flush is armed yet.
    std::optional<TimePoint> start_unwritten(const Task& task, TimePoint began, std::chrono::milliseconds delay);
    /// A handler logged `line` (at line.at): the next round stores it
    /// (Batch::logs). Returns as start_unwritten.
    std::optional<TimePoint> log_unwritten(LogRecord line, std::chrono::milliseconds delay);
    /// The armed flush of unwritten starts and log lines fired at `now`: true
    /// if they are due to be committed; else `rearm` says when to look again,
    /// if ever.
    bool starts_due(TimePoint now, std::chrono::milliseconds delay, std::optional<TimePoint>& rearm);

    /// Drops what `runs` (just abandoned) queued: their writes, effects and
    /// ready tasks. Returns the waiters of the dropped effects, and appends the
    /// dropped ready tasks to `stale`.
    std::vector<CommitWaiter*> drop(const std::vector<std::shared_ptr<RunState>>& runs, std::vector<Task>& stale);

private:
    /// Something unwritten that began at `began` is about to be added: the
    /// flush time if none is armed yet (arms it).
    std::optional<TimePoint> unwritten_added(TimePoint began, std::chrono::milliseconds delay) LOOM_REQUIRES(mutex_);

    Mutex mutex_;
    Batch pending_ LOOM_GUARDED_BY(mutex_);
    std::vector<Effects> effects_ LOOM_GUARDED_BY(mutex_);
    std::vector<Task> ready_ LOOM_GUARDED_BY(mutex_);
    /// Attempts started but not yet written: the next round records those
    /// still running; a quick attempt is recorded with its result instead.
    std::vector<Task> unwritten_ LOOM_GUARDED_BY(mutex_);
    TimePoint oldest_unwritten_ LOOM_GUARDED_BY(mutex_){};   // when the oldest start or log line began
    bool flush_armed_ LOOM_GUARDED_BY(mutex_) = false;
    bool leading_ LOOM_GUARDED_BY(mutex_) = false;
    /// Size and age of the pending batch, read without the mutex by due().
    std::atomic<std::size_t> count_{0};
    std::atomic<std::int64_t> since_ns_{0};   // steady clock
};

}  // namespace loom::detail
