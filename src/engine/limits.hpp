// The concurrency limits of ExecutorOptions::max_running_per_handler and
// max_running_per_workflow: how many attempts of each key run now, and the
// tasks parked until a slot of theirs frees. Internal.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "engine/task.hpp"
#include "runtime/mutex.hpp"

namespace loom::detail {

/// Thread safety: any thread; its mutex is taken under a run's (lock order:
/// RunState::mutex, then this) and nothing is called with it held.
class ConcurrencyLimits {
public:
    ConcurrencyLimits(std::map<std::string, unsigned> per_handler, std::map<std::string, unsigned> per_workflow);

    /// Takes a slot of every limit that applies to the task's step, or parks
    /// the task on the first that is full and returns false.
    bool take(const Task& task);
    /// The task's attempt is over: frees the slots take() gave it. Returns the
    /// tasks to dispatch, one per freed slot (a task another limit still holds
    /// back parks there when it runs).
    std::vector<Task> free(const Task& task);
    /// Takes out the tasks of `run` parked on any limit (it is stopping, and
    /// they must run to end).
    std::vector<Task> unpark(const RunState& run);

private:
    /// The keys of the limits that apply to the task's step: "handler NAME",
    /// "workflow NAME", with their limits.
    std::vector<std::pair<std::string, unsigned>> limits_of(const Task& task) const;

    const std::map<std::string, unsigned> per_handler_, per_workflow_;
    Mutex mutex_;
    std::map<std::string, unsigned> running_ LOOM_GUARDED_BY(mutex_);
    std::map<std::string, std::deque<Task>> parked_ LOOM_GUARDED_BY(mutex_);
};

}  // namespace loom::detail
