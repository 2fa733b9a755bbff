// The PostgreSQL migrations, oldest first. A released migration is never
// edited: change the schema by appending one. Times are bigint milliseconds
// since the epoch and JSON is text, as in SqliteStore, so one tool reads both;
// text rather than jsonb keeps a handler's output byte for byte (jsonb refuses
// \u0000 and reorders keys).
#include "store/postgres_schema.hpp"

#include <array>
#include <chrono>

#include <fmt/format.h>

#include <loom/error.hpp>
#include <loom/error_ids.hpp>

#include "store/store_support.hpp"

namespace loom::detail::pg {
namespace {

struct Migration {
    int version;
    const char* description;
    const char* sql;
};

constexpr std::array<Migration, 2> kMigrations{{
    // The schema of SqliteStore's version 9, plus what PostgreSQL needs:
    // `ord` orders runs created in one millisecond (SQLite's rowid);
    // event_counter hands out event seqs in commit order (see
    // postgres_store.cpp); store_commits lets a writer that lost its connection
    // during COMMIT find out whether it took effect.
    {1, "tables for definitions, runs, steps, elements, events and commit tracking", R"sql(
CREATE TABLE workflow_definitions (
    name       text NOT NULL,
    version    bigint NOT NULL,
    hash       text NOT NULL,
    definition text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE workflow_runs (
    id               text NOT NULL PRIMARY KEY,
    ord              bigint GENERATED ALWAYS AS IDENTITY,
    workflow_name    text NOT NULL,
    workflow_version bigint NOT NULL,
    workflow_hash    text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    input            text,
    output           text,
    error            text,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    finished_at      bigint,
    idempotency_key  text UNIQUE,
    priority         integer NOT NULL DEFAULT 0,
    paused           boolean NOT NULL DEFAULT false,
    owner            text,
    lease_until      bigint,
    control_seq      bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (workflow_name, workflow_version)
        REFERENCES workflow_definitions (name, version)
);
CREATE TABLE step_runs (
    run_id       text NOT NULL REFERENCES workflow_runs (id),
    step_id      text NOT NULL,
    position     integer NOT NULL,
    status       text NOT NULL
                 CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'suspended',
                                   'completed', 'failed', 'skipped', 'compensating',
                                   'compensated', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output       text,
    error        text,
    started_at   bigint,
    finished_at  bigint,
    wake_at      bigint,
    attempt_base integer NOT NULL DEFAULT 0 CHECK (attempt_base >= 0),
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE step_items (
    run_id       text NOT NULL,
    step_id      text NOT NULL,
    idx          bigint NOT NULL CHECK (idx >= 0),
    status       text NOT NULL
                 CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'completed', 'failed',
                                   'cancelled')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    output       text,
    error        text,
    started_at   bigint,
    finished_at  bigint,
    wake_at      bigint,
    attempt_base integer NOT NULL DEFAULT 0 CHECK (attempt_base >= 0),
    PRIMARY KEY (run_id, step_id, idx),
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs (run_id, step_id)
);
CREATE TABLE run_events (
    seq     bigint NOT NULL PRIMARY KEY,
    run_id  text NOT NULL REFERENCES workflow_runs (id),
    step_id text NOT NULL DEFAULT '',
    kind    text NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    detail  text NOT NULL DEFAULT '',
    at      bigint NOT NULL
);
CREATE UNIQUE INDEX run_events_step_started ON run_events (run_id, step_id, attempt)
    WHERE kind = 'step.started';
CREATE TABLE event_counter (
    one      boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
    last_seq bigint NOT NULL
);
INSERT INTO event_counter (last_seq) VALUES (0);
CREATE TABLE store_commits (
    writer    text NOT NULL PRIMARY KEY,
    commits   bigint NOT NULL,
    opened_at bigint NOT NULL
);
)sql"},
    // list_runs filters by status or workflow and sorts newest first; claims and
    // recovery read running runs oldest first; a run's history is read in seq
    // order; an owner polls for the runs that requests reached.
    {2, "indexes for run listings, claims, run history and control requests", R"sql(
CREATE INDEX workflow_runs_by_created ON workflow_runs (created_at, ord);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status, created_at, ord);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_name, created_at, ord);
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
CREATE INDEX workflow_runs_controlled ON workflow_runs (owner, control_seq) WHERE status = 'running';
)sql"},
}};

}  // namespace

int latest_schema_version() noexcept { return kMigrations.back().version; }

int schema_version(pqxx::transaction_base& tx) {
    if (tx.exec("SELECT to_regclass('schema_migrations')")[0][0].is_null()) return 0;
    return tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
}

bool migrate_step(pqxx::transaction_base& tx, const std::string& where, int target) {
    // Per schema, so that stores in different schemas of one database migrate
    // independently; held until the transaction ends.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('loom.schema.' || current_schema()))");
    const int current = schema_version(tx);
    if (current > latest_schema_version()) {
        throw StoreError(error_id::store_schema_too_new,
                         fmt::format("{}: schema version {} is newer than this library supports ({})",
                                     where, current, latest_schema_version()));
    }
    for (const Migration& migration : kMigrations) {
        if (migration.version <= current) continue;
        if (migration.version > target) return false;
        tx.exec(R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer NOT NULL PRIMARY KEY,
    description text NOT NULL,
    applied_at  bigint NOT NULL
))sql");
        tx.exec(migration.sql);
        tx.exec_params("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
                       migration.version, std::string(migration.description),
                       to_millis(std::chrono::system_clock::now()));
        return true;
    }
    return false;
}

}  // namespace loom::detail::pg
