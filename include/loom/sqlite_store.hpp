// SqliteStore: the default Store, one SQLite file in WAL mode. SQLiteCpp stays an
// implementation detail (pimpl): hosts need only this header.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <loom/store.hpp>

namespace loom {

struct SqliteOptions {
    /// FULL (the default) fsyncs every commit, so an acknowledged step survives
    /// power loss. NORMAL is faster and still safe against a process crash, but a
    /// power loss may roll back the last commits.
    enum class Synchronous { full, normal };
    Synchronous synchronous = Synchronous::full;
    /// How long a write waits for another process's lock before StoreError.
    std::chrono::milliseconds busy_timeout{5000};
    /// The name of a registered SQLite VFS to open the file through, for tests
    /// and special file systems; empty: SQLite's default.
    std::string vfs;
};

/// What a SqliteStore's writing connection runs with, as SQLite reports it (not
/// as asked): SqliteStore::settings().
struct SqliteSettings {
    std::string journal_mode;   // "wal"
    int synchronous = 0;        // PRAGMA synchronous: 2 is FULL, 1 NORMAL
    bool foreign_keys = false;
    std::chrono::milliseconds busy_timeout{0};
};

/// A Store on one SQLite database file, created if missing. Opening applies any
/// pending schema migrations (recorded in schema_migrations) and refuses, with
/// StoreError "[loom.store.schema_too_new]", a file written by a newer Loom.
///
///     loom::SqliteStore store("runs.db");
///
/// Writes use BEGIN IMMEDIATE; several processes may open one file, and a
/// writer waits up to busy_timeout for another.
///
/// Thread safety: every verb may be called concurrently; writes share one
/// connection (serialized), reads use a second one, so reads never wait on a
/// commit's fsync.
class SqliteStore final : public Store {
public:
    /// Throws StoreError if the file cannot be opened or migrated.
    explicit SqliteStore(const std::string& path, SqliteOptions options = {});
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

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
    /// Reads back the settings of the connection that writes, which no other
    /// connection can see (they are per connection): a check that the store
    /// is as durable as configured. Throws StoreError if SQLite cannot answer.
    SqliteSettings settings();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom
