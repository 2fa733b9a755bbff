// The migrations, oldest first. A released migration is never edited: change the
// schema by appending one. Times are integer milliseconds since the epoch and
// JSON is text, so the file reads the same from any SQLite client.
#include "sqlite_schema.hpp"

#include <array>
#include <chrono>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <loom/error.hpp>

#include "store_support.hpp"

namespace loom::detail {
namespace {

struct Migration {
    int version;
    const char* description;
    const char* sql;
};

constexpr std::array<Migration, 3> kMigrations{{
    {1, "tables for definitions, runs, steps and events", R"sql(
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
);
CREATE TABLE workflow_definitions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE workflow_runs (
    id               TEXT NOT NULL PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    workflow_hash    TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    input            TEXT,
    output           TEXT,
    error            TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    FOREIGN KEY (workflow_name, workflow_version)
        REFERENCES workflow_definitions (name, version)
);
CREATE TABLE step_runs (
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id),
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'ready', 'running', 'completed', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
CREATE TABLE run_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL REFERENCES workflow_runs (id),
    step_id TEXT NOT NULL DEFAULT '',
    kind    TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    detail  TEXT NOT NULL DEFAULT '',
    at      INTEGER NOT NULL
);
)sql"},
    // list_runs filters by status or workflow and sorts newest first; recovery
    // asks for running runs oldest first; a run's history is read in seq order.
    {2, "indexes for run listings and run history", R"sql(
CREATE INDEX workflow_runs_by_created ON workflow_runs (created_at);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status, created_at);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_name, created_at);
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
)sql"},
    // A step attempt starts once: the store, not only the executor, refuses a
    // second claim of (run, step, attempt). A file from an older Loom that
    // already holds such a duplicate keeps every row; the later ones are
    // relabelled 'step.started.duplicate' so that the index can be built.
    {3, "a step attempt starts once", R"sql(
UPDATE run_events SET kind = 'step.started.duplicate'
WHERE kind = 'step.started' AND seq NOT IN (
    SELECT min(seq) FROM run_events WHERE kind = 'step.started'
    GROUP BY run_id, step_id, attempt);
CREATE UNIQUE INDEX run_events_step_started ON run_events (run_id, step_id, attempt)
    WHERE kind = 'step.started';
)sql"},
}};

}  // namespace

int latest_schema_version() noexcept { return kMigrations.back().version; }

int schema_version(SQLite::Database& db) {
    if (!db.tableExists("schema_migrations")) return 0;
    return db.execAndGet("SELECT coalesce(max(version), 0) FROM schema_migrations").getInt();
}

void check_schema_version(SQLite::Database& db, const std::string& path) {
    const int version = schema_version(db);
    if (version > latest_schema_version()) {
        throw StoreError("loom.store.schema_too_new",
                         fmt::format("{}: schema version {} is newer than this library "
                                     "supports ({})",
                                     path, version, latest_schema_version()));
    }
}

void migrate(SQLite::Database& db, const std::string& path, int target) {
    check_schema_version(db, path);
    const int current = schema_version(db);
    for (const Migration& migration : kMigrations) {
        if (migration.version <= current) continue;
        if (migration.version > target) break;
        SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
        // Read under the write lock: another process may have migrated meanwhile.
        if (schema_version(db) >= migration.version) continue;
        db.exec(migration.sql);
        SQLite::Statement record(db,
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)");
        record.bind(1, migration.version);
        record.bind(2, migration.description);
        record.bind(3, to_millis(std::chrono::system_clock::now()));
        record.exec();
        transaction.commit();
    }
}

}  // namespace loom::detail
