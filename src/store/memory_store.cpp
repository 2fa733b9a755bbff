// MemoryStore: the Store contract over hash maps under one mutex. commit() is on
// the executor's hot path, so every write is found in O(1) (run by id, step by
// id within its run) and nothing is copied beyond the written values.
#include <loom/events.hpp>
#include <loom/memory_store.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>

#include "runtime/mutex.hpp"
#include "store/store_support.hpp"

namespace loom {
namespace {

struct RunRow {
    RunInfo info;
    std::unordered_map<std::string, std::size_t> step_index;  // step id -> index in info.steps
    std::vector<RunEvent> events;
    std::vector<LogRecord> logs;
    // step id -> attempts with a "step.started" event: an attempt starts once.
    std::unordered_map<std::string, std::vector<int>> started;
    std::int64_t control_seq = 0;   // the event seq after which a RunControl last reached it
};

// A run as list results give it: every column but the steps.
RunInfo without_steps(const RunInfo& run) {
    RunInfo out;
    out.id = run.id;
    out.workflow_name = run.workflow_name;
    out.workflow_version = run.workflow_version;
    out.workflow_hash = run.workflow_hash;
    out.status = run.status;
    out.cancel_requested = run.cancel_requested;
    out.input = run.input;
    out.output = run.output;
    out.error = run.error;
    out.created_at = run.created_at;
    out.updated_at = run.updated_at;
    out.finished_at = run.finished_at;
    out.idempotency_key = run.idempotency_key;
    out.priority = run.priority;
    out.paused = run.paused;
    out.owner = run.owner;
    out.lease_until = run.lease_until;
    return out;
}

std::optional<TimePoint> to_stored(const std::optional<TimePoint>& at) {
    if (!at) return std::nullopt;
    return detail::to_stored(*at);
}

ItemInfo stored(ItemInfo item) {
    item.started_at = to_stored(item.started_at);
    item.finished_at = to_stored(item.finished_at);
    item.wake_at = to_stored(item.wake_at);
    return item;
}

}  // namespace

struct MemoryStore::State {
    detail::Mutex mutex;
    std::map<std::string, std::map<std::int64_t, WorkflowRecord>, std::less<>> workflows LOOM_GUARDED_BY(mutex);
    std::unordered_map<RunId, RunRow> runs LOOM_GUARDED_BY(mutex);
    std::unordered_map<std::string, RunId> by_key LOOM_GUARDED_BY(mutex);   // idempotency key -> run id
    // Runs oldest first; the id breaks ties between runs created in one
    // millisecond, as in the other stores' indexes.
    std::map<std::pair<TimePoint, RunId>, RunRow*> by_created LOOM_GUARDED_BY(mutex);
    std::int64_t next_seq LOOM_GUARDED_BY(mutex) = 1;
    // Resolved targets of the batch being committed; kept to reuse their capacity.
    std::vector<StepInfo*> step_targets LOOM_GUARDED_BY(mutex);
    std::vector<StepInfo*> item_targets LOOM_GUARDED_BY(mutex);   // the step of each item write
    std::vector<RunRow*> run_targets LOOM_GUARDED_BY(mutex);
    std::vector<RunRow*> control_targets LOOM_GUARDED_BY(mutex);
    std::vector<RunRow*> event_targets LOOM_GUARDED_BY(mutex);
    std::vector<std::vector<int>*> started_added LOOM_GUARDED_BY(mutex);   // by resolve(), undone by unresolve()
    RunRow* last_found LOOM_GUARDED_BY(mutex) = nullptr;   // the run find_run found last (rows never move)

    bool has_workflow(const std::string& name, std::int64_t version) const LOOM_REQUIRES(mutex) {
        auto versions = workflows.find(name);
        return versions != workflows.end() && versions->second.count(version) != 0;
    }

    // Inserts a new run after checking it; throws and inserts nothing if it is bad.
    void insert_run(const RunInfo& run) LOOM_REQUIRES(mutex) {
        if (runs.count(run.id) != 0) throw detail::duplicate_run(run.id);
        if (!has_workflow(run.workflow_name, run.workflow_version)) {
            throw detail::unknown_workflow(run);
        }
        if (!run.idempotency_key.empty()) {
            auto holder = by_key.find(run.idempotency_key);
            if (holder != by_key.end()) throw detail::duplicate_key(run, holder->second);
        }
        RunRow row;
        row.step_index.reserve(run.steps.size());
        for (std::size_t i = 0; i < run.steps.size(); ++i) {
            if (!row.step_index.emplace(run.steps[i].step_id, i).second) {
                throw detail::duplicate_step(run.id, run.steps[i].step_id);
            }
        }
        row.info = run;
        row.info.created_at = detail::to_stored(run.created_at);
        row.info.updated_at = detail::to_stored(run.updated_at);
        row.info.finished_at = to_stored(run.finished_at);
        row.info.lease_until = run.owner.empty() ? std::nullopt : to_stored(run.lease_until);
        for (StepInfo& step : row.info.steps) {
            step.started_at = to_stored(step.started_at);
            step.finished_at = to_stored(step.finished_at);
            step.wake_at = to_stored(step.wake_at);
            for (ItemInfo& item : step.items) item = stored(std::move(item));
        }
        RunRow& stored = runs.emplace(run.id, std::move(row)).first->second;
        by_created.emplace(std::make_pair(stored.info.created_at, run.id), &stored);
        if (!run.idempotency_key.empty()) by_key.emplace(run.idempotency_key, run.id);
    }

    // Undoes insert_run for a batch that failed later on.
    void erase_run(const RunId& id) LOOM_REQUIRES(mutex) {
        auto it = runs.find(id);
        by_created.erase(std::make_pair(it->second.info.created_at, id));
        if (!it->second.info.idempotency_key.empty()) by_key.erase(it->second.info.idempotency_key);
        if (last_found == &it->second) last_found = nullptr;
        runs.erase(it);
    }

    RunRow& find_run(const RunId& id) LOOM_REQUIRES(mutex) {
        // A batch's writes come in runs of the same run: skip the hash then.
        if (last_found && last_found->info.id == id) return *last_found;
        auto it = runs.find(id);
        if (it == runs.end()) throw detail::missing_row(id);
        last_found = &it->second;
        return it->second;
    }

    StepInfo& find_step(const RunId& run_id, const std::string& step_id) LOOM_REQUIRES(mutex) {
        RunRow& run = find_run(run_id);
        auto it = run.step_index.find(step_id);
        if (it == run.step_index.end()) throw detail::missing_row(run_id, step_id);
        return run.info.steps[it->second];
    }

    // Finds every row the batch writes; throws (changing nothing) if one is missing.
    void resolve(const Batch& batch) LOOM_REQUIRES(mutex) {
        step_targets.clear();
        item_targets.clear();
        run_targets.clear();
        event_targets.clear();
        for (const StepWrite& write : batch.steps) {
            step_targets.push_back(&find_step(write.run_id, write.step_id));
        }
        for (const ItemWrite& write : batch.items) {
            item_targets.push_back(&find_step(write.run_id, write.step_id));
        }
        for (const RunWrite& write : batch.runs) run_targets.push_back(&find_run(write.run_id));
        control_targets.clear();
        for (const RunControl& control : batch.controls) control_targets.push_back(&find_run(control.run_id));
        for (const RunEvent& event : batch.events) {
            RunRow& run = find_run(event.run_id);
            event_targets.push_back(&run);
            if (event.kind == loom::event::step_started) claim_attempt(run, event);
        }
        if (!batch.owner.empty()) check_fence(batch);
    }

    // Each run in batch.fenced is the batch owner's, or a final run that a
    // write of the batch takes over (RunWrite::take_lease).
    void check_fence(const Batch& batch) LOOM_REQUIRES(mutex) {
        for (const RunId& id : batch.fenced) {
            const RunInfo& run = find_run(id).info;
            if (run.owner == batch.owner) continue;
            const bool taken = is_final(run.status) &&
                               std::any_of(batch.runs.begin(), batch.runs.end(), [&](const RunWrite& w) {
                                   return w.take_lease && w.run_id == id;
                               });
            if (!taken) throw detail::not_owner(id, batch.owner, run.owner);
        }
    }

    // Records the start of (run, step, attempt), which must not have started yet,
    // in this batch or before (as SQLite's unique index run_events_step_started).
    void claim_attempt(RunRow& run, const RunEvent& event) LOOM_REQUIRES(mutex) {
        std::vector<int>& attempts = run.started[event.step_id];
        if (std::find(attempts.begin(), attempts.end(), event.attempt) != attempts.end()) {
            throw detail::duplicate_attempt(event.run_id, event.step_id, event.attempt);
        }
        attempts.push_back(event.attempt);
        started_added.push_back(&attempts);
    }

    // Undoes what a failed resolve() claimed, newest first.
    void unresolve() LOOM_REQUIRES(mutex) {
        for (auto it = started_added.rbegin(); it != started_added.rend(); ++it) (*it)->pop_back();
        started_added.clear();
    }

    void apply(const Batch& batch) LOOM_REQUIRES(mutex) {
        for (std::size_t i = 0; i < batch.steps.size(); ++i) {
            const StepWrite& write = batch.steps[i];
            StepInfo& step = *step_targets[i];
            step.status = write.status;
            step.attempts = write.attempts;
            step.output = write.output;
            step.error = write.error;
            step.started_at = to_stored(write.started_at);
            step.finished_at = to_stored(write.finished_at);
            step.wake_at = to_stored(write.wake_at);
            step.attempt_base = write.attempt_base;
            if (write.reset_items) step.items.clear();
        }
        for (std::size_t i = 0; i < batch.items.size(); ++i) {
            std::vector<ItemInfo>& items = item_targets[i]->items;
            ItemInfo item = stored(batch.items[i].item);
            auto at = std::lower_bound(items.begin(), items.end(), item.index,
                                       [](const ItemInfo& a, std::uint32_t index) { return a.index < index; });
            if (at != items.end() && at->index == item.index) {
                *at = std::move(item);
            } else {
                items.insert(at, std::move(item));
            }
        }
        for (std::size_t i = 0; i < batch.runs.size(); ++i) {
            const RunWrite& write = batch.runs[i];
            RunInfo& run = run_targets[i]->info;
            if (write.take_lease && is_final(run.status) && !batch.owner.empty()) {
                run.owner = batch.owner;
                run.lease_until = detail::to_stored(*write.take_lease);
            }
            run.status = write.status;
            if (is_final(run.status)) {
                run.owner.clear();
                run.lease_until.reset();
            }
            run.cancel_requested = write.cancel_requested;
            run.paused = write.paused;
            run.output = write.output;
            run.error = write.error;
            run.updated_at = detail::to_stored(write.updated_at);
            run.finished_at = to_stored(write.finished_at);
        }
        for (std::size_t i = 0; i < batch.controls.size(); ++i) {
            const RunControl& control = batch.controls[i];
            RunRow& row = *control_targets[i];
            if (is_final(row.info.status)) continue;
            if (control.cancel_requested) row.info.cancel_requested = *control.cancel_requested;
            if (control.paused) row.info.paused = *control.paused;
            row.control_seq = next_seq;   // events after it get this seq or later
        }
        for (std::size_t i = 0; i < batch.events.size(); ++i) {
            RunEvent& event = event_targets[i]->events.emplace_back(batch.events[i]);
            event.seq = next_seq++;
            event.at = detail::to_stored(event.at);
        }
        for (const LogRecord& line : batch.logs) {
            auto run = runs.find(line.run_id);
            if (run == runs.end()) continue;   // the contract allows dropping it
            run->second.logs.emplace_back(line).at = detail::to_stored(line.at);
        }
    }
};

MemoryStore::MemoryStore() : state_(std::make_unique<State>()) {}
MemoryStore::~MemoryStore() = default;

bool MemoryStore::save_workflow(const WorkflowRecord& workflow) { return save_definition(workflow, false); }

bool MemoryStore::replace_workflow(const WorkflowRecord& workflow) { return save_definition(workflow, true); }

bool MemoryStore::save_definition(const WorkflowRecord& workflow, bool replace) {
    detail::MutexLock lock(state_->mutex);
    auto& versions = state_->workflows[workflow.name];
    auto it = versions.find(workflow.version);
    if (it != versions.end()) {
        if (it->second.hash == workflow.hash) return false;
        if (!replace)
            throw detail::definition_conflict(workflow.name, workflow.version, it->second.hash, workflow.hash);
        for (const auto& [id, row] : state_->runs) {
            const RunInfo& run = row.info;
            if (run.workflow_name == workflow.name && run.workflow_version == workflow.version &&
                !is_final(run.status))
                throw detail::definition_in_use(workflow.name, workflow.version, id);
        }
        versions.erase(it);
    }
    WorkflowRecord& stored = versions.emplace(workflow.version, workflow).first->second;
    stored.created_at = detail::to_stored(workflow.created_at);
    return true;
}

std::optional<WorkflowRecord> MemoryStore::load_workflow(std::string_view name,
                                                         std::optional<std::int64_t> version) {
    detail::MutexLock lock(state_->mutex);
    auto versions = state_->workflows.find(name);
    if (versions == state_->workflows.end() || versions->second.empty()) return std::nullopt;
    if (!version) return versions->second.rbegin()->second;
    auto it = versions->second.find(*version);
    if (it == versions->second.end()) return std::nullopt;
    return it->second;
}

std::vector<WorkflowRecord> MemoryStore::list_workflows() {
    detail::MutexLock lock(state_->mutex);
    std::vector<WorkflowRecord> out;
    for (const auto& [name, versions] : state_->workflows) {
        for (const auto& [version, record] : versions) out.push_back(record);
    }
    return out;
}

void MemoryStore::commit(const Batch& batch) {
    detail::MutexLock lock(state_->mutex);
    // New runs go in first so that the batch's writes can find them; if any later
    // part of the batch is bad they come out again, and the store is unchanged.
    std::size_t inserted = 0;
    state_->started_added.clear();
    try {
        for (const RunInfo& run : batch.new_runs) {
            state_->insert_run(run);
            ++inserted;
        }
        state_->resolve(batch);
    } catch (...) {
        state_->unresolve();
        for (std::size_t i = 0; i < inserted; ++i) state_->erase_run(batch.new_runs[i].id);
        throw;
    }
    state_->apply(batch);
}

std::vector<RunId> MemoryStore::claim_runs(const ClaimRequest& request) {
    detail::MutexLock lock(state_->mutex);
    auto has = [](const auto& list, const auto& value) {
        return std::find(list.begin(), list.end(), value) != list.end();
    };
    std::vector<RunId> out;
    for (auto& [key, row] : state_->by_created) {
        if (out.size() >= request.limit) break;
        RunInfo& run = row->info;
        if (run.status != RunStatus::running) continue;
        const bool free = run.owner.empty() || !run.lease_until || *run.lease_until <= request.now ||
                          has(request.dead_owners, run.owner);
        if (!free || (!request.enqueued && run.owner.empty() && !run.lease_until)) continue;
        if (request.workflows && !has(*request.workflows, std::make_pair(run.workflow_name, run.workflow_version)))
            continue;
        run.owner = request.owner;
        run.lease_until = detail::to_stored(request.until);
        out.push_back(run.id);
    }
    return out;
}

std::vector<RunId> MemoryStore::renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                             TimePoint until) {
    detail::MutexLock lock(state_->mutex);
    std::vector<RunId> lost;
    for (const auto& id : ids) {
        auto it = state_->runs.find(id);
        if (it == state_->runs.end() || it->second.info.owner != owner ||
            it->second.info.status != RunStatus::running) {
            lost.push_back(id);
            continue;
        }
        it->second.info.lease_until = detail::to_stored(until);
    }
    return lost;
}

void MemoryStore::release_runs(const std::string& owner, const std::vector<RunId>& ids) {
    detail::MutexLock lock(state_->mutex);
    for (const auto& id : ids) {
        auto it = state_->runs.find(id);
        if (it == state_->runs.end() || it->second.info.owner != owner) continue;
        it->second.info.owner.clear();
        it->second.info.lease_until = detail::now_stored();
    }
}

std::vector<RunId> MemoryStore::controlled_runs(const std::string& owner, std::int64_t& mark) {
    detail::MutexLock lock(state_->mutex);
    std::vector<RunId> out;
    for (const auto& [id, row] : state_->runs) {
        if (row.info.status == RunStatus::running && row.info.owner == owner && row.control_seq > mark)
            out.push_back(id);
    }
    mark = state_->next_seq - 1;
    return out;
}

std::vector<std::string> MemoryStore::run_owners() {
    detail::MutexLock lock(state_->mutex);
    std::vector<std::string> out;
    for (const auto& [id, row] : state_->runs) {
        const RunInfo& run = row.info;
        if (run.status == RunStatus::running && !run.owner.empty() &&
            std::find(out.begin(), out.end(), run.owner) == out.end())
            out.push_back(run.owner);
    }
    return out;
}

std::optional<RunInfo> MemoryStore::load_run(const RunId& id) {
    detail::MutexLock lock(state_->mutex);
    auto it = state_->runs.find(id);
    if (it == state_->runs.end()) return std::nullopt;
    return it->second.info;
}

std::optional<RunId> MemoryStore::find_run_by_key(std::string_view idempotency_key) {
    if (idempotency_key.empty()) return std::nullopt;
    detail::MutexLock lock(state_->mutex);
    auto it = state_->by_key.find(std::string(idempotency_key));
    if (it == state_->by_key.end()) return std::nullopt;
    return it->second;
}

std::vector<RunInfo> MemoryStore::list_runs(const RunFilter& filter) {
    detail::MutexLock lock(state_->mutex);
    std::vector<RunInfo> out;
    auto& runs = state_->by_created;
    // Newest first: walk back from the first key not in the page.
    auto end = runs.end();
    if (filter.after) end = runs.lower_bound(std::make_pair(detail::to_stored(filter.after->created_at), filter.after->id));
    if (filter.until) {
        auto until = runs.lower_bound(std::make_pair(detail::to_stored(*filter.until), RunId()));
        if (end == runs.end() || (until != runs.end() && until->first < end->first)) end = until;
    }
    for (auto it = std::make_reverse_iterator(end); it != runs.rend() && out.size() < filter.limit; ++it) {
        const RunInfo& run = it->second->info;
        if (filter.since && run.created_at < detail::to_stored(*filter.since)) break;
        if (filter.workflow_name && run.workflow_name != *filter.workflow_name) continue;
        if (filter.status && run.status != *filter.status) continue;
        if (filter.finished_before && !(is_final(run.status) && run.finished_at &&
                                        *run.finished_at < detail::to_stored(*filter.finished_before)))
            continue;
        out.push_back(without_steps(run));
    }
    return out;
}

std::vector<RunId> MemoryStore::unfinished_runs() {
    detail::MutexLock lock(state_->mutex);
    std::vector<RunId> out;
    for (const auto& entry : state_->by_created) {
        if (entry.second->info.status == RunStatus::running) out.push_back(entry.second->info.id);
    }
    return out;
}

std::vector<RunEvent> MemoryStore::load_events(const RunId& id) {
    detail::MutexLock lock(state_->mutex);
    auto it = state_->runs.find(id);
    if (it == state_->runs.end()) return {};
    return it->second.events;
}

std::vector<LogRecord> MemoryStore::load_logs(const RunId& id, std::string_view step_id) {
    detail::MutexLock lock(state_->mutex);
    auto it = state_->runs.find(id);
    if (it == state_->runs.end()) return {};
    std::vector<LogRecord> out;
    for (const LogRecord& line : it->second.logs)
        if (step_id.empty() || line.step_id == step_id) out.push_back(line);
    return out;
}

std::size_t MemoryStore::delete_runs(const std::vector<RunId>& ids) {
    detail::MutexLock lock(state_->mutex);
    std::size_t deleted = 0;
    for (const RunId& id : ids) {
        auto it = state_->runs.find(id);
        if (it == state_->runs.end() || !is_final(it->second.info.status)) continue;
        state_->erase_run(id);
        ++deleted;
    }
    return deleted;
}

}  // namespace loom
