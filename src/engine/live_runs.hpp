// The runs this executor runs now, by id, and why runs it dropped after a
// failed commit were dropped. Internal. A run is live from launch() until its
// final write is committed or it is abandoned; the store is the truth for any
// other run.
#pragma once

#include <exception>
#include <memory>
#include <unordered_map>
#include <vector>

#include <loom/run.hpp>

#include "runtime/mutex.hpp"

namespace loom::detail {

struct RunState;

/// Thread safety: every method may be called from any thread; none calls out
/// with its mutex held, so it may be taken under a run's mutex (lock order:
/// RunState::mutex, then this).
class LiveRuns {
public:
    /// Makes `run` live, and forgets why an earlier state of it was abandoned.
    /// False, changing nothing, if a run of that id is live already (another
    /// recover() has it).
    bool add(const std::shared_ptr<RunState>& run);
    /// The live run `id`, or null.
    std::shared_ptr<RunState> find(const RunId& id) const;
    /// Every live run, at one moment.
    std::vector<std::shared_ptr<RunState>> all() const;
    /// `run` is live no more; a newer state of the same id (a recover() after
    /// its abandonment) stays.
    void remove(const RunState& run);
    /// The run was abandoned because a commit failed with `why`: wait()
    /// reports it until the run is made live again (add).
    void abandoned(const RunId& id, std::exception_ptr why);
    /// Why run `id` was abandoned, or null if it was not (or is live again).
    std::exception_ptr why_abandoned(const RunId& id) const;

private:
    mutable Mutex mutex_;
    std::unordered_map<RunId, std::shared_ptr<RunState>> runs_ LOOM_GUARDED_BY(mutex_);
    std::unordered_map<RunId, std::exception_ptr> abandoned_ LOOM_GUARDED_BY(mutex_);
};

}  // namespace loom::detail
