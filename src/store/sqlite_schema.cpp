// The migrations, oldest first. A released migration is never edited: change the
// schema by appending one. Times are integer milliseconds since the epoch and
// JSON is text, so the file reads the same from any SQLite client.
#include "store/sqlite_schema.hpp"

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <loom/error.hpp>

#include "store/store_support.hpp"

namespace loom::detail {
namespace {

struct Migration {
    int version;
    const char* description;
    const char* sql;
    // The table the sql rebuilds (create new, copy, drop, rename), or nullptr.
    // migrate() then follows SQLite's procedure for such changes: foreign keys
    // off around the transaction, the table's own indexes and triggers (a
    // host's too) created again, foreign_key_check before the commit.
    const char* rebuilds = nullptr;
};

constexpr std::array<Migration, 11> kMigrations{{
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
    // A failed attempt waits for its retry (wake_at); a step whose condition is
    // false is skipped; a failed run's completed steps are compensated (saga). SQLite cannot alter a CHECK, so step_runs is rebuilt
    // with every row. A run may carry an idempotency key, unique when present,
    // a priority, and a paused flag.
    {4, "waiting, suspended, skipped and compensation step states, wake_at; run idempotency keys, priority, paused", R"sql(
CREATE TABLE step_runs_v4 (
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id),
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'suspended',
                                  'completed', 'failed', 'skipped', 'compensating',
                                  'compensated')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    wake_at     INTEGER,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
INSERT INTO step_runs_v4 (run_id, step_id, position, status, attempts, output, error,
                          started_at, finished_at)
    SELECT run_id, step_id, position, status, attempts, output, error, started_at, finished_at
    FROM step_runs;
DROP TABLE step_runs;
ALTER TABLE step_runs_v4 RENAME TO step_runs;
ALTER TABLE workflow_runs ADD COLUMN idempotency_key TEXT;
ALTER TABLE workflow_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_runs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));
CREATE UNIQUE INDEX workflow_runs_by_idempotency_key ON workflow_runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
)sql",
     "step_runs"},
    // A for_each step checkpoints each element by its index: one row per
    // element that completed, failed or waits for a retry.
    {5, "for_each elements", R"sql(
CREATE TABLE step_items (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'completed', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    wake_at     INTEGER,
    PRIMARY KEY (run_id, step_id, idx),
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs (run_id, step_id)
) WITHOUT ROWID;
)sql"},
    // A final run's steps that never finished are cancelled, not left pending.
    // step_runs is rebuilt with every row for the new CHECK, as in 4.
    {6, "cancelled step state", R"sql(
CREATE TABLE step_runs_v6 (
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id),
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'suspended',
                                  'completed', 'failed', 'skipped', 'compensating',
                                  'compensated', 'cancelled')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    wake_at     INTEGER,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
INSERT INTO step_runs_v6 (run_id, step_id, position, status, attempts, output, error,
                          started_at, finished_at, wake_at)
    SELECT run_id, step_id, position, status, attempts, output, error, started_at, finished_at, wake_at
    FROM step_runs;
DROP TABLE step_runs;
ALTER TABLE step_runs_v6 RENAME TO step_runs;
)sql",
     "step_runs"},
    // Where a step's (an element's) retry budget starts: attempts made before
    // a retry()/rerun() or cancelled by a shutdown do not count, after a
    // restart too. Rows from before count from 0, as they did. An element of
    // a for_each step that ended unfinished is cancelled, as steps are in 6:
    // step_items is rebuilt with every row for the new CHECK.
    {7, "retry budget base, cancelled elements", R"sql(
ALTER TABLE step_runs ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0 CHECK (attempt_base >= 0);
CREATE TABLE step_items_v7 (
    run_id       TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    idx          INTEGER NOT NULL CHECK (idx >= 0),
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'completed', 'failed',
                                   'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output       TEXT,
    error        TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    wake_at      INTEGER,
    attempt_base INTEGER NOT NULL DEFAULT 0 CHECK (attempt_base >= 0),
    PRIMARY KEY (run_id, step_id, idx),
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs (run_id, step_id)
) WITHOUT ROWID;
INSERT INTO step_items_v7 (run_id, step_id, idx, status, attempts, output, error,
                           started_at, finished_at, wake_at)
    SELECT run_id, step_id, idx, status, attempts, output, error, started_at, finished_at, wake_at
    FROM step_items;
DROP TABLE step_items;
ALTER TABLE step_items_v7 RENAME TO step_items;
)sql",
     "step_items"},
    // Ownership: the executor that runs a run, and until when its lease lasts
    // (milliseconds since the epoch). Runs from before have no owner: any
    // executor may claim them.
    {8, "run ownership leases", R"sql(
ALTER TABLE workflow_runs ADD COLUMN owner TEXT;
ALTER TABLE workflow_runs ADD COLUMN lease_until INTEGER;
)sql"},
    // Requests from executors that do not run a run (cancel, pause, a signal)
    // mark it with the event seq after which they came, so that its owner
    // finds them by polling (Store::controlled_runs) through the index.
    {9, "control requests for owners", R"sql(
ALTER TABLE workflow_runs ADD COLUMN control_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX workflow_runs_controlled ON workflow_runs (owner, control_seq) WHERE status = 'running';
)sql"},
    // Unfinished runs from before ownership (schema 8), and runs released by
    // builds that did not record the release time, have neither owner nor
    // lease, as enqueued runs do, which wait for a worker's claim. Their
    // leases are marked long expired: recover() and adoption take them as
    // runs whose owner is gone, and leave enqueued runs to the claims.
    {10, "runs from before ownership count as orphaned, not enqueued", R"sql(
UPDATE workflow_runs SET lease_until = 0
WHERE status = 'running' AND owner IS NULL AND lease_until IS NULL
  AND NOT EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = workflow_runs.id AND e.kind = 'run.enqueued');
)sql"},
    // Handler log lines, read per run in the order stored (rowid). A page of
    // list_runs continues after (created_at, id) of the last run it gave, so
    // the listing indexes end with id; retention finds final runs by
    // finished_at.
    {11, "stored log lines, run listing by page, retention", R"sql(
CREATE TABLE run_logs (
    run_id  TEXT NOT NULL,
    step_id TEXT NOT NULL DEFAULT '',
    item    INTEGER CHECK (item >= 0),
    attempt INTEGER NOT NULL DEFAULT 0,
    level   TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX run_logs_by_run ON run_logs (run_id);
DROP INDEX workflow_runs_by_created;
DROP INDEX workflow_runs_by_status;
DROP INDEX workflow_runs_by_workflow;
CREATE INDEX workflow_runs_by_created ON workflow_runs (created_at, id);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status, created_at, id);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_name, created_at, id);
CREATE INDEX workflow_runs_by_finished ON workflow_runs (finished_at) WHERE finished_at IS NOT NULL;
)sql"},
}};

// PRAGMA foreign_keys is a no-op inside a transaction, so a rebuild turns the
// enforcement off before BEGIN (dropping a table that others reference must
// not cascade or fail) and this guard turns it back on, also after an error.
class ForeignKeysOff {
public:
    explicit ForeignKeysOff(SQLite::Database& db)
        : db_(db), was_on_(db.execAndGet("PRAGMA foreign_keys").getInt() != 0) {
        if (was_on_) db_.exec("PRAGMA foreign_keys = OFF");
    }
    ~ForeignKeysOff() {
        if (!was_on_) return;
        try {
            db_.exec("PRAGMA foreign_keys = ON");
        } catch (const SQLite::Exception&) {
            // Only fails on a connection with a transaction open, which the
            // migration's Transaction has rolled back by now.
        }
    }
    ForeignKeysOff(const ForeignKeysOff&) = delete;
    ForeignKeysOff& operator=(const ForeignKeysOff&) = delete;

private:
    SQLite::Database& db_;
    bool was_on_;
};

// The CREATE statements of the table's explicit indexes and its triggers,
// which DROP TABLE removes with it (automatic indexes have no sql).
std::vector<std::string> dependents(SQLite::Database& db, const char* table) {
    SQLite::Statement query(db,
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name");
    query.bind(1, table);
    std::vector<std::string> out;
    while (query.executeStep()) out.push_back(query.getColumn(0).getString());
    return out;
}

// Throws StoreError if a row's foreign key finds no parent after a rebuild, which
// ran with enforcement off. Loom's connections always enforce foreign keys, so
// such a row was written by another client; the schema is left as it was.
void check_foreign_keys(SQLite::Database& db, const std::string& path,
                        const Migration& migration) {
    SQLite::Statement check(db, "PRAGMA foreign_key_check");
    if (!check.executeStep()) return;
    throw StoreError(error_id::store_migration_failed,
                     fmt::format("{}: schema migration {} ({}): table {} holds a row whose "
                                 "parent in {} does not exist; the migration was rolled back",
                                 path, migration.version, migration.description,
                                 check.getColumn(0).getString(), check.getColumn(2).getString()));
}

}  // namespace

int latest_schema_version() noexcept { return kMigrations.back().version; }

int schema_version(SQLite::Database& db) {
    if (!db.tableExists("schema_migrations")) return 0;
    return db.execAndGet("SELECT coalesce(max(version), 0) FROM schema_migrations").getInt();
}

void check_schema_version(SQLite::Database& db, const std::string& path) {
    const int version = schema_version(db);
    if (version > latest_schema_version()) {
        throw StoreError(error_id::store_schema_too_new,
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
        std::optional<ForeignKeysOff> foreign_keys_off;
        if (migration.rebuilds) foreign_keys_off.emplace(db);
        SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
        // Read under the write lock: another process may have migrated meanwhile.
        if (schema_version(db) >= migration.version) continue;
        std::vector<std::string> recreate;
        if (migration.rebuilds) recreate = dependents(db, migration.rebuilds);
        db.exec(migration.sql);
        for (const std::string& sql : recreate) db.exec(sql);
        if (migration.rebuilds) check_foreign_keys(db, path, migration);
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
