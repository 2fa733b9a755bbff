// Executor internals shared by executor.cpp (the public verbs) and
// scheduler.cpp (running steps and the group commit). Internal.
//
// Lock order: RunState::mutex, then commit_mutex_ or live_mutex_. Neither
// commit_mutex_, live_mutex_ nor workflows_mutex_ is held while taking another.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <atomic>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <loom/executor.hpp>

#include "run_state.hpp"
#include "thread_pool.hpp"

namespace loom::detail {

/// A host thread blocked until its writes are committed (start, cancel, recover).
struct CommitWaiter {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;              // guarded by mutex
    std::exception_ptr error;       // guarded by mutex
    void signal(std::exception_ptr e);
    /// Rethrows the commit's error.
    void wait();
};

/// What to do once a batch holding a run's writes is durable.
struct Effects {
    std::shared_ptr<RunState> run;
    std::vector<std::uint32_t> ready;            // dispatch these steps
    std::optional<std::uint32_t> finished_step;  // tell observers
    bool run_started = false;
    bool run_finished = false;
    CommitWaiter* waiter = nullptr;
};

/// The transitions one run change produces: built under the run's mutex and
/// queued for commit in one piece, so a run's writes commit in the order made.
struct Change {
    Batch writes;
    Effects effects;
};

TimePoint now_ms();

}  // namespace loom::detail

namespace loom {

using detail::Change;
using detail::CommitWaiter;
using detail::Effects;
using detail::RunState;
using detail::Task;

struct Executor::Impl {
    Impl(Store& store, HandlerRegistry& handlers, ExecutorOptions options);
    ~Impl();

    // --- scheduler.cpp ---
    struct Result {
        Json output;
        std::string error;   // empty: the attempt succeeded
    };
    /// Runs a task and the continuations it yields.
    void run_task(Task& task);
    /// Marks the step running and returns its attempt number, or nullopt if the
    /// run is stopping (then must_lead says whether this thread must commit).
    std::optional<int> claim(const Task& task, bool& must_lead);
    /// Calls the handler; no exception leaves it.
    Result call_handler(RunState& run, std::uint32_t step, int attempt);
    /// Records the attempt's result and readies dependents; true: must lead.
    bool record_result(const Task& task, Result&& result);
    /// Queues a change for commit. Call with the run's mutex held (if any) so a
    /// run's changes queue in order. Returns true if the caller must lead.
    bool submit(Change&& change, bool urgent);
    /// Commits pending changes until none is urgent. `held` (workers only)
    /// receives one ready step to run next; host threads lead one round and
    /// hand on to a worker.
    void lead(Task* held);
    /// Queues the final run write if the run is finished; run mutex held.
    void finalize_if_done(RunState& run, Change& change);
    /// Writes of a step's current state and the event that explains it.
    /// Adds start writes for attempts in `started` that are still running.
    void record_starts(std::vector<Task>& started, Batch& batch);
    /// `event` may be null: the write alone, no history entry.
    void record_step(RunState& run, std::uint32_t step, Batch& writes, const char* event,
                     std::string detail = {});
    /// Applies a committed (or failed) change's effects; collects ready steps.
    void apply(Effects& effects, const std::exception_ptr& failure, std::vector<Task>& ready);
    /// Drops the live state of a run whose commit failed; the store is the truth.
    void abandon(Effects& effects, const std::exception_ptr& failure);
    /// For host threads, after submit() with a waiter and without the run
    /// mutex: leads if submit() said so, then waits for the commit.
    void await_commit(bool must_lead, CommitWaiter& waiter);

    // --- executor.cpp ---
    std::shared_ptr<const Workflow> find_workflow(const std::string& name,
                                                  std::optional<std::int64_t> version);
    std::vector<std::shared_ptr<StepHandler>> resolve_handlers(const Workflow& wf,
                                                               const RunId& run);
    /// Builds live state from a stored run (fresh or recovered) and the change
    /// that makes its ready steps ready.
    std::shared_ptr<RunState> make_state(const RunInfo& info, std::shared_ptr<const Workflow> wf,
                                         std::vector<std::shared_ptr<StepHandler>> handlers,
                                         Change& change);
    std::shared_ptr<RunState> find_live(const RunId& id);
    void erase_live(const std::shared_ptr<RunState>& run);
    void notify(const std::function<void(Observer&)>& call);

    Store& store_;
    HandlerRegistry& handlers_;
    ExecutorOptions options_;

    std::mutex workflows_mutex_;
    std::map<std::pair<std::string, std::int64_t>, std::shared_ptr<const Workflow>>
        workflows_;   // guarded by workflows_mutex_

    std::mutex live_mutex_;
    std::unordered_map<RunId, std::shared_ptr<RunState>> live_;   // guarded by live_mutex_
    /// Why runs were abandoned (a commit failed), until recover() resumes them:
    /// wait() reports it even when called after the fact.
    std::unordered_map<RunId, std::exception_ptr> abandoned_;      // guarded by live_mutex_

    std::mutex commit_mutex_;
    Batch pending_;                        // guarded by commit_mutex_
    std::vector<Effects> pending_effects_; // guarded by commit_mutex_
    /// Attempts started but not yet written: the next commit records those
    /// still running; a quick attempt is recorded with its result instead.
    std::vector<Task> unrecorded_;         // guarded by commit_mutex_
    std::size_t urgent_ = 0;               // guarded by commit_mutex_
    bool leading_ = false;                 // guarded by commit_mutex_
    /// The leader's buffers, kept between rounds and leaders so that their
    /// capacity is reused. Only the thread that set leading_ touches them.
    struct LeaderBuffers {
        Batch batch;
        std::vector<Effects> effects;
        std::vector<Task> started;
        std::vector<Task> ready;
    } leader_;

    std::atomic<bool> stopping_{false};
    detail::ThreadPool pool_;   // last: its threads stop before the rest is destroyed
};

}  // namespace loom
