#include "engine/live_runs.hpp"

#include "engine/run_state.hpp"

namespace loom::detail {

bool LiveRuns::add(const std::shared_ptr<RunState>& run) {
    MutexLock lock(mutex_);
    if (!runs_.emplace(run->id, run).second) return false;
    abandoned_.erase(run->id);
    return true;
}

std::shared_ptr<RunState> LiveRuns::find(const RunId& id) const {
    MutexLock lock(mutex_);
    auto it = runs_.find(id);
    return it == runs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<RunState>> LiveRuns::all() const {
    MutexLock lock(mutex_);
    std::vector<std::shared_ptr<RunState>> out;
    out.reserve(runs_.size());
    for (const auto& [id, run] : runs_) out.push_back(run);
    return out;
}

void LiveRuns::remove(const RunState& run) {
    MutexLock lock(mutex_);
    auto it = runs_.find(run.id);
    if (it != runs_.end() && it->second.get() == &run) runs_.erase(it);
}

void LiveRuns::abandoned(const RunId& id, std::exception_ptr why) {
    MutexLock lock(mutex_);
    abandoned_[id] = std::move(why);
}

std::exception_ptr LiveRuns::why_abandoned(const RunId& id) const {
    MutexLock lock(mutex_);
    auto it = abandoned_.find(id);
    return it == abandoned_.end() ? nullptr : it->second;
}

}  // namespace loom::detail
