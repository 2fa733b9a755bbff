// MemoryStore: a Store that keeps everything in memory, for tests and hosts that
// need no durability. It honours the same contract as every other store.
#pragma once

#include <memory>

#include <loom/store.hpp>

namespace loom {

/// An in-memory Store; its contents die with it.
///
///     loom::MemoryStore store;
///     loom::Executor executor(store, handlers);
///
/// Thread safety: every verb may be called concurrently (one internal mutex).
class MemoryStore final : public Store {
public:
    MemoryStore();
    ~MemoryStore() override;

    bool save_workflow(const WorkflowRecord& workflow) override;
    bool replace_workflow(const WorkflowRecord& workflow) override;
    std::optional<WorkflowRecord> load_workflow(
        std::string_view name, std::optional<std::int64_t> version = std::nullopt) override;
    std::vector<WorkflowRecord> list_workflows() override;
    void commit(const Batch& batch) override;
    std::optional<RunInfo> load_run(const RunId& id) override;
    std::optional<RunId> find_run_by_key(std::string_view idempotency_key) override;
    std::vector<RunInfo> list_runs(const RunFilter& filter = {}) override;
    std::vector<RunId> unfinished_runs() override;
    std::vector<RunEvent> load_events(const RunId& id) override;
    std::vector<LogRecord> load_logs(const RunId& id, std::string_view step_id = {}) override;
    std::size_t delete_runs(const std::vector<RunId>& ids) override;
    std::vector<RunId> claim_runs(const ClaimRequest& request) override;
    std::vector<RunId> renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                    TimePoint until) override;
    void release_runs(const std::string& owner, const std::vector<RunId>& ids) override;
    std::vector<std::string> run_owners() override;
    std::vector<RunId> controlled_runs(const std::string& owner, std::int64_t& mark) override;

private:
    /// save_workflow, or with `replace` replace_workflow.
    bool save_definition(const WorkflowRecord& workflow, bool replace);

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace loom
