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

constexpr std::array<Migration, 4> kMigrations{{
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
    // A commit in one round trip: PostgresStore sends the whole batch as one
    // jsonb document to loom_commit(), in a transaction of its own, instead of
    // a statement per row (BEGIN, nine statements and COMMIT were nine round
    // trips and half the time of a chain step). The function applies the batch
    // in Batch's order, set-wise, and reports a broken rule of the Store
    // contract with SQLSTATE LM001 and a message 'loom_commit:{json}' naming
    // the rule and the row, which the store turns into its typed error.
    {3, "loom_commit(): a batch applied by one call", R"sql(
CREATE FUNCTION loom_commit_fail(rule text, args jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'LM001', MESSAGE = 'loom_commit:' || (args || jsonb_build_object('rule', rule))::text;
END $fn$;

-- Writes for_each elements (an upsert: last write wins); their steps must exist.
CREATE FUNCTION loom_commit_items(items jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    IF items IS NULL THEN
        RETURN;
    END IF;
    SELECT x.run_id, x.step_id INTO r FROM jsonb_to_recordset(items) AS x(run_id text, step_id text, i int)
    WHERE NOT EXISTS (SELECT 1 FROM step_runs s WHERE s.run_id = x.run_id AND s.step_id = x.step_id)
    ORDER BY x.i LIMIT 1;
    IF FOUND THEN
        PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.run_id, 'step', r.step_id));
    END IF;
    INSERT INTO step_items (run_id, step_id, idx, status, attempts, output, error, started_at, finished_at,
                            wake_at, attempt_base)
    SELECT DISTINCT ON (x.run_id, x.step_id, x.idx) x.run_id, x.step_id, x.idx, x.status, x.attempts, x.output,
           x.error, x.started_at, x.finished_at, x.wake_at, x.attempt_base
    FROM jsonb_to_recordset(items) AS x(run_id text, step_id text, idx bigint, status text, attempts int,
        output text, error text, started_at bigint, finished_at bigint, wake_at bigint, attempt_base int, i int)
    ORDER BY x.run_id, x.step_id, x.idx, x.i DESC
    ON CONFLICT (run_id, step_id, idx) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
        output = excluded.output, error = excluded.error, started_at = excluded.started_at,
        finished_at = excluded.finished_at, wake_at = excluded.wake_at, attempt_base = excluded.attempt_base;
END $fn$;

-- Joins between the batch's rows and a table probe the table's index: the
-- planner takes jsonb_to_recordset() for 100 rows and would otherwise hash a
-- whole table (a long run's steps, say) on every commit, a cost that grows
-- with the store instead of with the batch.
CREATE FUNCTION loom_commit(writer_id text, commit_no bigint, b jsonb) RETURNS void LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $fn$
DECLARE
    r record;
    expected bigint;
    done bigint;
    first_seq bigint;
    events int := jsonb_array_length(coalesce(b->'events', '[]'));
BEGIN
    -- Commit tracking (PgLink): this transaction is commit number commit_no.
    UPDATE store_commits SET commits = commit_no WHERE writer = writer_id;
    IF NOT FOUND THEN
        PERFORM loom_commit_fail('no_writer', jsonb_build_object('writer', writer_id));
    END IF;

    IF b ? 'new_runs' THEN
        -- An idempotency key held by a stored run or by an earlier run of this batch.
        SELECT n.id, n.holder INTO r FROM (
            SELECT n.id, n.i, coalesce(
                (SELECT w.id FROM workflow_runs w WHERE w.idempotency_key = n.idempotency_key),
                (SELECT m.id FROM jsonb_to_recordset(b->'new_runs') AS m(id text, idempotency_key text, i int)
                  WHERE m.idempotency_key = n.idempotency_key AND m.i < n.i ORDER BY m.i LIMIT 1)) AS holder
            FROM jsonb_to_recordset(b->'new_runs') AS n(id text, idempotency_key text, i int)
            WHERE n.idempotency_key IS NOT NULL) n
        WHERE n.holder IS NOT NULL ORDER BY n.i LIMIT 1;
        IF FOUND THEN
            PERFORM loom_commit_fail('duplicate_key', jsonb_build_object('run', r.id, 'holder', r.holder));
        END IF;
        SELECT n.id INTO r FROM jsonb_to_recordset(b->'new_runs') AS n(id text, workflow_name text,
                                                                      workflow_version bigint, i int)
        WHERE NOT EXISTS (SELECT 1 FROM workflow_definitions d
                          WHERE d.name = n.workflow_name AND d.version = n.workflow_version)
        ORDER BY n.i LIMIT 1;
        IF FOUND THEN
            PERFORM loom_commit_fail('unknown_workflow', jsonb_build_object('run', r.id));
        END IF;
        SELECT n.id INTO r FROM jsonb_to_recordset(b->'new_runs') AS n(id text, i int)
        WHERE EXISTS (SELECT 1 FROM workflow_runs w WHERE w.id = n.id)
           OR EXISTS (SELECT 1 FROM jsonb_to_recordset(b->'new_runs') AS m(id text, i int)
                      WHERE m.id = n.id AND m.i < n.i)
        ORDER BY n.i LIMIT 1;
        IF FOUND THEN
            PERFORM loom_commit_fail('duplicate_run', jsonb_build_object('run', r.id));
        END IF;
        BEGIN
            INSERT INTO workflow_runs (id, workflow_name, workflow_version, workflow_hash, status,
                                       cancel_requested, input, output, error, created_at, updated_at,
                                       finished_at, idempotency_key, priority, paused, owner, lease_until)
            SELECT n.id, n.workflow_name, n.workflow_version, n.workflow_hash, n.status, n.cancel_requested,
                   n.input, n.output, n.error, n.created_at, n.updated_at, n.finished_at, n.idempotency_key,
                   n.priority, n.paused, n.owner, n.lease_until
            FROM jsonb_to_recordset(b->'new_runs') AS n(id text, workflow_name text, workflow_version bigint,
                workflow_hash text, status text, cancel_requested boolean, input text, output text, error text,
                created_at bigint, updated_at bigint, finished_at bigint, idempotency_key text, priority int,
                paused boolean, owner text, lease_until bigint, i int)
            ORDER BY n.i;
        EXCEPTION WHEN unique_violation THEN
            -- Another transaction committed the same id or key since the checks above.
            SELECT n.id, w.id AS holder, w.id = n.id AS same_id INTO r
            FROM jsonb_to_recordset(b->'new_runs') AS n(id text, idempotency_key text, i int)
            JOIN workflow_runs w ON w.id = n.id OR w.idempotency_key = n.idempotency_key
            ORDER BY n.i LIMIT 1;
            IF FOUND AND NOT r.same_id THEN
                PERFORM loom_commit_fail('duplicate_key', jsonb_build_object('run', r.id, 'holder', r.holder));
            END IF;
            PERFORM loom_commit_fail('duplicate_run', jsonb_build_object('run', coalesce(r.id, b->'new_runs'->0->>'id')));
        END;
        SELECT s.run_id, s.step_id INTO r FROM jsonb_to_recordset(b->'new_steps') AS s(run_id text, step_id text, i int)
        GROUP BY s.run_id, s.step_id HAVING count(*) > 1 ORDER BY min(s.i) LIMIT 1;
        IF FOUND THEN
            PERFORM loom_commit_fail('duplicate_step', jsonb_build_object('run', r.run_id, 'step', r.step_id));
        END IF;
        INSERT INTO step_runs (run_id, step_id, position, status, attempts, output, error, started_at,
                               finished_at, wake_at, attempt_base)
        SELECT s.run_id, s.step_id, s.position, s.status, s.attempts, s.output, s.error, s.started_at,
               s.finished_at, s.wake_at, s.attempt_base
        FROM jsonb_to_recordset(b->'new_steps') AS s(run_id text, step_id text, position int, status text,
            attempts int, output text, error text, started_at bigint, finished_at bigint, wake_at bigint,
            attempt_base int);
        PERFORM loom_commit_items(b->'new_items');
    END IF;

    IF b ? 'leases' THEN
        -- A write that reopens a final run hands it to the batch's owner first.
        UPDATE workflow_runs w SET owner = b->>'owner', lease_until = l.until
        FROM jsonb_to_recordset(b->'leases') AS l(run_id text, until bigint)
        WHERE w.id = l.run_id AND w.status <> 'running';
    END IF;

    IF b ? 'fenced' THEN
        -- Fencing: locked in id order (the list is sorted), so that two fenced
        -- batches never deadlock; a claim skips these rows until the commit.
        PERFORM 1 FROM workflow_runs WHERE id IN (SELECT jsonb_array_elements_text(b->'fenced'))
        ORDER BY id FOR NO KEY UPDATE;
        SELECT f.id, w.id IS NULL AS missing, w.owner INTO r
        FROM jsonb_array_elements_text(b->'fenced') WITH ORDINALITY AS f(id, i)
        LEFT JOIN workflow_runs w ON w.id = f.id
        WHERE w.id IS NULL OR w.owner IS DISTINCT FROM b->>'owner'
        ORDER BY f.i LIMIT 1;
        IF FOUND THEN
            IF r.missing THEN
                PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.id));
            END IF;
            PERFORM loom_commit_fail('not_owner', jsonb_build_object('run', r.id, 'owner', r.owner));
        END IF;
    END IF;

    IF b ? 'steps' THEN
        -- Last write wins: one row per step, the batch's latest.
        UPDATE step_runs t SET status = s.status, attempts = s.attempts, output = s.output, error = s.error,
                               started_at = s.started_at, finished_at = s.finished_at, wake_at = s.wake_at,
                               attempt_base = s.attempt_base
        FROM (SELECT DISTINCT ON (x.run_id, x.step_id) x.*
              FROM jsonb_to_recordset(b->'steps') AS x(run_id text, step_id text, status text, attempts int,
                  output text, error text, started_at bigint, finished_at bigint, wake_at bigint,
                  attempt_base int, i int)
              ORDER BY x.run_id, x.step_id, x.i DESC) s
        WHERE t.run_id = s.run_id AND t.step_id = s.step_id;
        GET DIAGNOSTICS done = ROW_COUNT;
        SELECT count(DISTINCT (s.run_id, s.step_id)) INTO expected
        FROM jsonb_to_recordset(b->'steps') AS s(run_id text, step_id text);
        IF done <> expected THEN
            SELECT s.run_id, s.step_id INTO r FROM jsonb_to_recordset(b->'steps') AS s(run_id text, step_id text, i int)
            WHERE NOT EXISTS (SELECT 1 FROM step_runs t WHERE t.run_id = s.run_id AND t.step_id = s.step_id)
            ORDER BY s.i LIMIT 1;
            PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.run_id, 'step', r.step_id));
        END IF;
        DELETE FROM step_items t USING jsonb_to_recordset(b->'steps') AS s(run_id text, step_id text, reset_items boolean)
        WHERE s.reset_items AND t.run_id = s.run_id AND t.step_id = s.step_id;
    END IF;

    PERFORM loom_commit_items(b->'items');

    IF b ? 'runs' THEN
        -- A final status clears the owner and the lease.
        UPDATE workflow_runs w SET status = x.status, cancel_requested = x.cancel_requested, output = x.output,
                                   error = x.error, updated_at = x.updated_at, finished_at = x.finished_at,
                                   paused = x.paused,
                                   owner = CASE WHEN x.status = 'running' THEN w.owner END,
                                   lease_until = CASE WHEN x.status = 'running' THEN w.lease_until END
        FROM (SELECT DISTINCT ON (y.run_id) y.*
              FROM jsonb_to_recordset(b->'runs') AS y(run_id text, status text, cancel_requested boolean,
                  output text, error text, updated_at bigint, finished_at bigint, paused boolean, i int)
              ORDER BY y.run_id, y.i DESC) x
        WHERE w.id = x.run_id;
        GET DIAGNOSTICS done = ROW_COUNT;
        SELECT count(DISTINCT x.run_id) INTO expected FROM jsonb_to_recordset(b->'runs') AS x(run_id text);
        IF done <> expected THEN
            SELECT x.run_id INTO r FROM jsonb_to_recordset(b->'runs') AS x(run_id text, i int)
            WHERE NOT EXISTS (SELECT 1 FROM workflow_runs w WHERE w.id = x.run_id) ORDER BY x.i LIMIT 1;
            PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.run_id));
        END IF;
    END IF;

    IF NOT (b ? 'controls' OR b ? 'events') THEN
        RETURN;
    END IF;
    -- Event seqs, and the control_seq of the runs a request reaches, come from
    -- one counter row, not a sequence: nextval() hands numbers out in call
    -- order, not commit order, so a reader could see seq 12 committed while 11
    -- is in flight, and controlled_runs() would move its mark past a request it
    -- never saw. The row stays locked until this transaction ends, so seqs
    -- become visible in order; it is taken last, after the checks, to be held
    -- for little more than the COMMIT.
    SELECT e.run_id INTO r FROM jsonb_to_recordset(b->'events') AS e(run_id text, i int)
    WHERE NOT EXISTS (SELECT 1 FROM workflow_runs w WHERE w.id = e.run_id) ORDER BY e.i LIMIT 1;
    IF FOUND THEN
        PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.run_id));
    END IF;
    -- A request without events still moves the counter, so that the owner's
    -- next mark passes it and it is reported once.
    UPDATE event_counter SET last_seq = last_seq + greatest(events, 1)
    RETURNING last_seq - greatest(events, 1) INTO first_seq;
    FOR r IN SELECT * FROM jsonb_to_recordset(b->'controls') AS c(run_id text, cancel_requested boolean, paused boolean)
    LOOP
        -- Nothing is written to a final run; a missing one is an error.
        UPDATE workflow_runs SET cancel_requested = coalesce(r.cancel_requested, cancel_requested),
                                 paused = coalesce(r.paused, paused), control_seq = first_seq + 1
        WHERE id = r.run_id AND status = 'running';
        IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM workflow_runs WHERE id = r.run_id) THEN
            PERFORM loom_commit_fail('missing_row', jsonb_build_object('run', r.run_id));
        END IF;
    END LOOP;
    -- An attempt starts once: the unique index on started events says so as
    -- it inserts (a query asking first cost more than the rest of the commit).
    INSERT INTO run_events (seq, run_id, step_id, kind, attempt, detail, at)
    SELECT first_seq + e.i + 1, e.run_id, e.step_id, e.kind, e.attempt, e.detail, e.at
    FROM jsonb_to_recordset(b->'events') AS e(run_id text, step_id text, kind text, attempt int, detail text,
                                              at bigint, i int)
    ON CONFLICT (run_id, step_id, attempt) WHERE kind = 'step.started' DO NOTHING;
    GET DIAGNOSTICS done = ROW_COUNT;
    IF done < events THEN
        -- The refused ones are the started events whose seq did not go in.
        SELECT e.run_id, e.step_id, e.attempt INTO r
        FROM jsonb_to_recordset(b->'events') AS e(run_id text, step_id text, kind text, attempt int, i int)
        WHERE e.kind = 'step.started'
          AND NOT EXISTS (SELECT 1 FROM run_events v WHERE v.seq = first_seq + e.i + 1)
        ORDER BY e.i LIMIT 1;
        PERFORM loom_commit_fail('duplicate_attempt',
                                 jsonb_build_object('run', r.run_id, 'step', r.step_id, 'attempt', r.attempt));
    END IF;
END $fn$;
)sql"},
    // Handler log lines, read per run in the order stored (ord), written by
    // loom_commit() after the rest of the batch (the function of 3 runs
    // first, renamed). A page of list_runs continues after (created_at, id)
    // of the last run it gave, ids compared byte by byte as the other stores
    // do; retention finds final runs by finished_at.
    {4, "stored log lines, run listing by page, retention", R"sql(
CREATE TABLE run_logs (
    ord     bigserial NOT NULL PRIMARY KEY,
    run_id  text NOT NULL,
    step_id text NOT NULL DEFAULT '',
    item    bigint CHECK (item >= 0),
    attempt integer NOT NULL DEFAULT 0,
    level   text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message text NOT NULL,
    at      bigint NOT NULL
);
CREATE INDEX run_logs_by_run ON run_logs (run_id, ord);
DROP INDEX workflow_runs_by_created;
DROP INDEX workflow_runs_by_status;
DROP INDEX workflow_runs_by_workflow;
CREATE INDEX workflow_runs_by_created ON workflow_runs (created_at, id COLLATE "C");
CREATE INDEX workflow_runs_by_status ON workflow_runs (status, created_at, id COLLATE "C");
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_name, created_at, id COLLATE "C");
CREATE INDEX workflow_runs_by_finished ON workflow_runs (finished_at) WHERE finished_at IS NOT NULL;
ALTER FUNCTION loom_commit(text, bigint, jsonb) RENAME TO loom_commit_rows;
CREATE FUNCTION loom_commit(writer_id text, commit_no bigint, b jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM loom_commit_rows(writer_id, commit_no, b);
    IF b ? 'logs' THEN
        INSERT INTO run_logs (run_id, step_id, item, attempt, level, message, at)
        SELECT x.run_id, x.step_id, x.item, x.attempt, x.level, x.message, x.at
        FROM jsonb_to_recordset(b->'logs') AS x(run_id text, step_id text, item bigint, attempt int, level text,
                                                message text, at bigint, i int)
        ORDER BY x.i;
    END IF;
END $fn$;
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
