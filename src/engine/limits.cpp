#include "engine/limits.hpp"

#include <algorithm>
#include <iterator>

#include "engine/run_state.hpp"

namespace loom::detail {

ConcurrencyLimits::ConcurrencyLimits(std::map<std::string, unsigned> per_handler,
                                     std::map<std::string, unsigned> per_workflow)
    : per_handler_(std::move(per_handler)), per_workflow_(std::move(per_workflow)) {}

std::vector<std::pair<std::string, unsigned>> ConcurrencyLimits::limits_of(const Task& task) const {
    std::vector<std::pair<std::string, unsigned>> out;
    if (per_handler_.empty() && per_workflow_.empty()) return out;   // the common case: no work
    const Workflow& wf = *task.run->workflow;
    const std::string& handler = wf.steps()[task.step].handler;
    if (auto h = per_handler_.find(handler); h != per_handler_.end()) out.emplace_back("handler " + handler, h->second);
    if (auto w = per_workflow_.find(wf.name()); w != per_workflow_.end())
        out.emplace_back("workflow " + wf.name(), w->second);
    return out;
}

bool ConcurrencyLimits::take(const Task& task) {
    const auto limits = limits_of(task);
    if (limits.empty()) return true;
    MutexLock lock(mutex_);
    for (const auto& [key, limit] : limits) {
        if (running_[key] >= limit) {
            parked_[key].push_back(task);
            return false;
        }
    }
    for (const auto& [key, limit] : limits) ++running_[key];
    return true;
}

std::vector<Task> ConcurrencyLimits::free(const Task& task) {
    std::vector<Task> next;
    const auto limits = limits_of(task);
    if (limits.empty()) return next;
    MutexLock lock(mutex_);
    for (const auto& [key, limit] : limits) {
        --running_[key];
        auto& parked = parked_[key];
        if (parked.empty()) continue;
        next.push_back(std::move(parked.front()));
        parked.pop_front();
    }
    return next;
}

std::vector<Task> ConcurrencyLimits::unpark(const RunState& run) {
    std::vector<Task> mine;
    if (per_handler_.empty() && per_workflow_.empty()) return mine;
    MutexLock lock(mutex_);
    for (auto& [key, parked] : parked_) {
        auto keep = std::stable_partition(parked.begin(), parked.end(),
                                          [&](const Task& t) { return t.run.get() != &run; });
        std::move(keep, parked.end(), std::back_inserter(mine));
        parked.erase(keep, parked.end());
    }
    return mine;
}

}  // namespace loom::detail
