// The persistence interface: a few coarse verbs that every backend implements and
// one conformance suite (tests/store/store_test.cpp) checks. The store knows nothing of
// handlers or scheduling; the executor decides, the store records.
#pragma once

#include <cstdint>
#include <utility>
#include <cstddef>
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
    /// Set when the write makes a final run running again (retry, rerun): the
    /// batch's owner takes the run over, leased until then, before the fence
    /// is checked. A final status clears the owner and lease.
    std::optional<TimePoint> take_lease{};
};

/// A request about a run from an executor that does not run it (cancel,
/// pause, resume; a signal or completion sets neither field): the fields set
/// are written, and the run's owner finds it through Store::controlled_runs.
/// Nothing is written to a run that is final.
struct RunControl {
    RunId run_id;
    std::optional<bool> cancel_requested{};
    std::optional<bool> paused{};
};

/// Everything one transaction changes. Applied in this order: new runs (with
/// their steps, owner and lease as given), step writes, item writes, run
/// writes, controls, events (seq is assigned by the store), log lines. A Store must apply every
/// part, StepWrite::reset_items and `items` included: they are a for_each
/// step's checkpoints.
///
/// Fencing: when `owner` is set, every run named in `fenced` (after the new
/// runs are in) must be owned by `owner`; if one is not, the commit throws
/// Conflict "[loom.store.not_owner]" naming it and writes nothing. This check
/// in the same transaction is what keeps an executor that lost a run's lease
/// (it was paused, cut off, or too slow) from writing to it.
struct Batch {
    std::string owner;
    std::vector<RunId> fenced;   // may repeat an id
    std::vector<RunInfo> new_runs;
    std::vector<StepWrite> steps;
    std::vector<ItemWrite> items;
    std::vector<RunWrite> runs;
    std::vector<RunControl> controls;
    std::vector<RunEvent> events;
    /// Handler log lines (Store::load_logs), stored as they are: neither
    /// fenced nor checked against the runs they name.
    std::vector<LogRecord> logs;

    bool empty() const noexcept {
        return new_runs.empty() && steps.empty() && items.empty() && runs.empty() && controls.empty() &&
               events.empty() && logs.empty();
    }
    /// Empties the batch, keeping its capacity for reuse.
    void clear() noexcept {
        fenced.clear();
        new_runs.clear();
        steps.clear();
        items.clear();
        runs.clear();
        controls.clear();
        events.clear();
        logs.clear();
    }
    void swap(Batch& other) noexcept {
        owner.swap(other.owner);
        fenced.swap(other.fenced);
        new_runs.swap(other.new_runs);
        steps.swap(other.steps);
        items.swap(other.items);
        runs.swap(other.runs);
        controls.swap(other.controls);
        events.swap(other.events);
        logs.swap(other.logs);
    }
};

/// Which unfinished runs an executor takes over (Store::claim_runs).
struct ClaimRequest {
    std::string owner;        // the claimer's identity
    TimePoint now{};          // a lease that ends at or before this has expired
    TimePoint until{};        // the end of the claimed runs' lease
    /// Owners known to be gone (a process that died on this host): their
    /// leases count as expired.
    std::vector<std::string> dead_owners;
    /// Only runs of these (name, version); nullopt: of any workflow.
    std::optional<std::vector<std::pair<std::string, std::int64_t>>> workflows;
    std::size_t limit = SIZE_MAX;
    /// Also runs never claimed (enqueued: no owner and no lease_until).
    /// False: only runs that had an owner (recovery and adoption).
    bool enqueued = true;
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

    /// Runs matching the filter, newest first (created_at, then id, both
    /// descending), without steps. Each filter is served by an index: a page
    /// costs what it returns, not what the store holds.
    virtual std::vector<RunInfo> list_runs(const RunFilter& filter = {}) = 0;

    /// Ids of runs whose status is running, oldest first.
    virtual std::vector<RunId> unfinished_runs() = 0;

    /// The run's events in commit order (empty for an unknown run).
    virtual std::vector<RunEvent> load_events(const RunId& id) = 0;

    /// The run's stored log lines (Batch::logs) in the order they were
    /// committed; only those of step `step_id` (its elements' too) if it is
    /// not empty. Empty for an unknown run.
    virtual std::vector<LogRecord> load_logs(const RunId& id, std::string_view step_id = {}) = 0;

    /// Deletes the runs named that are final, with their steps, elements,
    /// events and log lines, in one transaction; unknown and unfinished runs
    /// are skipped. Returns how many runs it deleted.
    virtual std::size_t delete_runs(const std::vector<RunId>& ids) = 0;

    // ---- ownership: one executor runs a run at a time, under a lease ----

    /// Makes `request.owner` the owner of unfinished runs that nobody owns
    /// (released, or never claimed), whose lease expired, or whose owner is
    /// in dead_owners, oldest first, at most `limit`, with a lease until
    /// `until`. A lease that has not expired is not taken, the claimer's own
    /// included. One transaction; two claimers never both get a run.
    /// Returns the ids claimed.
    virtual std::vector<RunId> claim_runs(const ClaimRequest& request) = 0;

    /// Extends the lease of those of `ids` that `owner` still owns and that
    /// are unfinished to `until`. Returns the others: runs it lost (another
    /// executor claimed them) or that are final or unknown.
    virtual std::vector<RunId> renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                            TimePoint until) = 0;

    /// Gives up `owner`'s ownership of `ids` (those it owns; others are left
    /// alone), so that any executor may claim them at once. Their owner
    /// becomes empty and lease_until the time of the release: a run with
    /// neither was never claimed (it was enqueued).
    virtual void release_runs(const std::string& owner, const std::vector<RunId>& ids) = 0;

    /// The distinct owners of unfinished runs, whatever their leases.
    virtual std::vector<std::string> run_owners() = 0;

    /// The unfinished runs `owner` owns that a RunControl reached since the
    /// call that returned `mark` (0: ever), and the mark to pass next time.
    /// A run may come back more than once for one control.
    virtual std::vector<RunId> controlled_runs(const std::string& owner, std::int64_t& mark) = 0;
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
    std::vector<LogRecord> load_logs(const RunId& id, std::string_view step_id = {}) override {
        return target_.load_logs(id, step_id);
    }
    std::size_t delete_runs(const std::vector<RunId>& ids) override { return target_.delete_runs(ids); }
    std::vector<RunId> claim_runs(const ClaimRequest& request) override { return target_.claim_runs(request); }
    std::vector<RunId> renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                    TimePoint until) override {
        return target_.renew_leases(owner, ids, until);
    }
    void release_runs(const std::string& owner, const std::vector<RunId>& ids) override {
        target_.release_runs(owner, ids);
    }
    std::vector<std::string> run_owners() override { return target_.run_owners(); }
    std::vector<RunId> controlled_runs(const std::string& owner, std::int64_t& mark) override {
        return target_.controlled_runs(owner, mark);
    }

private:
    Store& target_;
};

}  // namespace loom
