// PostgresStore: the Store contract on a PostgreSQL database shared by many
// executors on many hosts. libpqxx stays an implementation detail (pimpl): hosts
// need only this header, and link loom::postgres.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <loom/store.hpp>

namespace loom {

struct PostgresOptions {
    /// How long one verb keeps retrying a lost connection, a server restart, a
    /// deadlock or a serialization failure before it throws StoreError.
    std::chrono::milliseconds retry_budget{30'000};
};

/// A Store on a PostgreSQL database (libpq connection string, keyword/value or
/// URI). Opening applies any pending schema migrations (recorded in
/// schema_migrations) and refuses, with StoreError
/// "[loom.store.schema_too_new]", a database written by a newer Loom. The tables
/// live in the connection's current schema (search_path).
///
///     loom::PostgresStore store("host=/run/postgresql dbname=loom");
///
/// Writes run at READ COMMITTED with explicit row locks; claims use
/// FOR UPDATE SKIP LOCKED, so executors claiming together never wait on one
/// another. A lost connection or a restarted server is ridden out within
/// retry_budget, and a commit whose outcome the lost connection hid is looked
/// up, never applied twice.
///
/// Thread safety: every verb may be called concurrently; writes share one
/// connection (serialized), reads use a second one, so reads never wait on a
/// commit.
class PostgresStore final : public Store {
public:
    /// Throws StoreError if the database cannot be reached within the retry
    /// budget, or migrated.
    explicit PostgresStore(std::string connection_string, PostgresOptions options = {});
    ~PostgresStore() override;
    PostgresStore(const PostgresStore&) = delete;
    PostgresStore& operator=(const PostgresStore&) = delete;

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

    /// The schema version this library writes.
    static int latest_schema_version() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom
