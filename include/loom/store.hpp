// The persistence interface: a few coarse verbs that every backend implements and
// one conformance suite (tests/store/store_test.cpp) checks. The store knows nothing of
// handlers or scheduling; the executor decides, the store records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/json.hpp>
#include <loom/run.hpp>

namespace loom {

/// A stored workflow definition, keyed by (name, version).
struct WorkflowRecord {
    std::string name;
    std::int64_t version = 0;
    std::string hash;        // Workflow::hash() of definition
    Json definition;         // Workflow::to_json()
    TimePoint created_at{};
};

/// The new state of one step row (every mutable column; last write wins).
struct StepWrite {
    RunId run_id;
    std::string step_id;
    StepStatus status = StepStatus::pending;
    int attempts = 0;
    Json output;
    std::string error;
    std::optional<TimePoint> started_at;
    std::optional<TimePoint> finished_at;
    std::optional<TimePoint> wake_at;   // waiting: when the next attempt is due
    /// The step's for_each elements are deleted first (a re-run starts it afresh).
    bool reset_items = false;
    int attempt_base = 0;   // StepInfo::attempt_base
};

/// The new state of one for_each element (every column; last write wins).
struct ItemWrite {
    RunId run_id;
    std::string step_id;
    ItemInfo item;
};

/// The new state of one run row's mutable columns.
struct RunWrite {
    RunId run_id;
    RunStatus status = RunStatus::running;
    bool cancel_requested = false;
    Json output;
    std::string error;
    TimePoint updated_at{};
    std::optional<TimePoint> finished_at;
    bool paused = false;
};

/// Everything one transaction changes. Applied in this order: new runs (with
/// their steps), step writes, item writes, run writes, events (seq is
/// assigned by the store). A Store must apply every part, StepWrite::reset_items
/// and `items` included: they are a for_each step's checkpoints.
struct Batch {
    std::vector<RunInfo> new_runs;
    std::vector<StepWrite> steps;
    std::vector<ItemWrite> items;
    std::vector<RunWrite> runs;
    std::vector<RunEvent> events;

    bool empty() const noexcept {
        return new_runs.empty() && steps.empty() && items.empty() && runs.empty() && events.empty();
    }
    /// Empties the batch, keeping its capacity for reuse.
    void clear() noexcept {
        new_runs.clear();
        steps.clear();
        items.clear();
        runs.clear();
        events.clear();
    }
    void swap(Batch& other) noexcept {
        new_runs.swap(other.new_runs);
        steps.swap(other.steps);
        items.swap(other.items);
        runs.swap(other.runs);
        events.swap(other.events);
    }
};

/// Where runs and definitions live. Implementations: MemoryStore, SqliteStore.
///
/// Contract for every verb: it either does all it says or throws and changes
/// nothing. StoreError for I/O failures and writes to rows that do not exist,
/// Conflict for writes that contradict what is stored.
///
/// Thread safety: every verb may be called from any thread, concurrently;
/// implementations serialize writes themselves.
class Store {
public:
    virtual ~Store() = default;

    /// Records a definition. Returns true if it was new, false if the identical
    /// definition (same hash) was already stored. Throws Conflict if (name,
    /// version) is stored with another hash.
    virtual bool save_workflow(const WorkflowRecord& workflow) = 0;

    /// As save_workflow, except that other content stored under (name,
    /// version) is replaced, provided no unfinished run (status running) uses
    /// that version; the check and the write are one transaction. For
    /// iterating on a definition during development (Executor::replace_workflow).
    /// Finished runs keep the hash they ran with. Returns true if anything was
    /// written. Throws Conflict "[loom.workflow.in_use]" naming an unfinished
    /// run of that version.
    virtual bool replace_workflow(const WorkflowRecord& workflow) = 0;

    /// The definition (name, version); the highest version when version is empty.
    virtual std::optional<WorkflowRecord> load_workflow(
        std::string_view name, std::optional<std::int64_t> version = std::nullopt) = 0;

    /// Every stored definition, ordered by name then version.
    virtual std::vector<WorkflowRecord> list_workflows() = 0;

    /// Applies the whole batch in one transaction. A new run whose id exists, or
    /// whose workflow (name, version) is not stored, throws Conflict / StoreError.
    /// A new run whose non-empty idempotency key another run holds (stored, or
    /// earlier in the batch) throws Conflict "[loom.run.duplicate_key]".
    virtual void commit(const Batch& batch) = 0;

    /// The run with all its steps in definition order (a for_each step with
    /// its stored elements, by index), or nullopt.
    virtual std::optional<RunInfo> load_run(const RunId& id) = 0;

    /// The id of the run started with this idempotency key, or nullopt (always
    /// for an empty key, which means none). A key stays with its run for good.
    virtual std::optional<RunId> find_run_by_key(std::string_view idempotency_key) = 0;

    /// Runs matching the filter, newest first, without steps.
    virtual std::vector<RunInfo> list_runs(const RunFilter& filter = {}) = 0;

    /// Ids of runs whose status is running, oldest first.
    virtual std::vector<RunId> unfinished_runs() = 0;

    /// The run's events in commit order (empty for an unknown run).
    virtual std::vector<RunEvent> load_events(const RunId& id) = 0;
};

/// Forwards every verb to another store; override one verb to add latency,
/// count calls or inject faults (after LevelDB's EnvWrapper).
///
/// Thread safety: as the wrapped store, plus whatever the override adds.
class StoreWrapper : public Store {
public:
    explicit StoreWrapper(Store& target) : target_(target) {}
    Store& target() const noexcept { return target_; }

    bool save_workflow(const WorkflowRecord& workflow) override {
        return target_.save_workflow(workflow);
    }
    bool replace_workflow(const WorkflowRecord& workflow) override {
        return target_.replace_workflow(workflow);
    }
    std::optional<WorkflowRecord> load_workflow(
        std::string_view name, std::optional<std::int64_t> version = std::nullopt) override {
        return target_.load_workflow(name, version);
    }
    std::vector<WorkflowRecord> list_workflows() override { return target_.list_workflows(); }
    void commit(const Batch& batch) override { target_.commit(batch); }
    std::optional<RunInfo> load_run(const RunId& id) override { return target_.load_run(id); }
    std::optional<RunId> find_run_by_key(std::string_view idempotency_key) override {
        return target_.find_run_by_key(idempotency_key);
    }
    std::vector<RunInfo> list_runs(const RunFilter& filter = {}) override {
        return target_.list_runs(filter);
    }
    std::vector<RunId> unfinished_runs() override { return target_.unfinished_runs(); }
    std::vector<RunEvent> load_events(const RunId& id) override { return target_.load_events(id); }

private:
    Store& target_;
};

}  // namespace loom
