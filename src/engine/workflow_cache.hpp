// The workflow definitions an executor runs, by name and version: those added
// here and those it loaded from the store, parsed once. Internal.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <loom/store.hpp>
#include <loom/workflow.hpp>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// Thread safety: any thread. Store calls are made without its mutex held.
class WorkflowCache {
public:
    WorkflowCache(Store& store, DefinitionLimits limits) : store_(store), limits_(std::move(limits)) {}

    /// Saves `workflow` in the store (Store::save_workflow, or with `replace`
    /// Store::replace_workflow) and caches it. Throws what the store throws.
    void add(const Workflow& workflow, bool replace, TimePoint at);
    /// Version `version` of workflow `name`, or without a version the highest
    /// added here (the store's highest only if none was). Throws NotFound
    /// "[loom.workflow.unknown]", and DefinitionError if a stored definition
    /// breaks the limits.
    std::shared_ptr<const Workflow> find(const std::string& name, std::optional<std::int64_t> version);

private:
    Store& store_;
    const DefinitionLimits limits_;
    Mutex mutex_;
    std::map<std::pair<std::string, std::int64_t>, std::shared_ptr<const Workflow>> workflows_
        LOOM_GUARDED_BY(mutex_);
};

}  // namespace loom::detail
