#include "engine/workflow_cache.hpp"

#include <iterator>
#include <limits>

#include <fmt/format.h>

#include <loom/error.hpp>

namespace loom::detail {

void WorkflowCache::add(const Workflow& workflow, bool replace, TimePoint at) {
    const WorkflowRecord record{workflow.name(), workflow.version(), workflow.hash(), workflow.to_json(), at};
    if (replace) {
        store_.replace_workflow(record);
    } else {
        store_.save_workflow(record);
    }
    MutexLock lock(mutex_);
    workflows_[{workflow.name(), workflow.version()}] = std::make_shared<const Workflow>(workflow);
}

std::shared_ptr<const Workflow> WorkflowCache::find(const std::string& name, std::optional<std::int64_t> version) {
    {
        MutexLock lock(mutex_);
        if (version) {
            auto it = workflows_.find({name, *version});
            if (it != workflows_.end()) return it->second;
        } else {
            auto it = workflows_.lower_bound({name, std::numeric_limits<std::int64_t>::max()});
            if (it != workflows_.begin() && std::prev(it)->first.first == name) return std::prev(it)->second;
        }
    }
    auto record = store_.load_workflow(name, version);
    if (!record) {
        throw NotFound(error_id::workflow_unknown,
                       version ? fmt::format("workflow \"{}\" version {} is not registered", name, *version)
                               : fmt::format("workflow \"{}\" is not registered", name));
    }
    MutexLock lock(mutex_);
    auto& cached = workflows_[{record->name, record->version}];
    if (!cached || cached->hash() != record->hash)
        cached = std::make_shared<const Workflow>(Workflow::from_json(record->definition, limits_));
    return cached;
}

}  // namespace loom::detail
