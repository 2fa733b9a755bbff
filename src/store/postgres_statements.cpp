// The SQL of PostgresStore (see postgres_store.cpp for why each statement
// locks what it locks). Parameters are $n; lists of ids are JSON arrays, so one
// prepared statement serves any number (jsonb_array_elements_text).
#include "store/postgres_statements.hpp"

#include <string>

#include <fmt/format.h>

namespace loom::detail::pg {

void prepare_writer(pqxx::connection& c) {
    c.prepare("find_definition_hash", "SELECT hash FROM workflow_definitions WHERE name = $1 AND version = $2");
    c.prepare("insert_definition",
              "INSERT INTO workflow_definitions (name, version, hash, definition, created_at) "
              "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING");
    c.prepare("definition_user",
              "SELECT id FROM workflow_runs WHERE workflow_name = $1 AND workflow_version = $2 "
              "AND status = 'running' LIMIT 1");
    c.prepare("update_definition",
              "UPDATE workflow_definitions SET hash = $3, definition = $4, created_at = $5 "
              "WHERE name = $1 AND version = $2");
    // Conflicts with the key-share lock that inserting a run of this version
    // takes through its foreign key: no new run slips in while a replace decides.
    c.prepare("lock_definition",
              "SELECT 1 FROM workflow_definitions WHERE name = $1 AND version = $2 FOR UPDATE");
    // A batch, applied by one call (postgres_schema.cpp, migration 3).
    c.prepare("commit", "SELECT loom_commit($1, $2, $3::jsonb)");
    // Oldest first; SKIP LOCKED: a run another claimer (or a fenced commit)
    // holds is left to it, so claimers never wait on one another.
    c.prepare("claim",
              "WITH picked AS ("
              " SELECT id, created_at, ord FROM workflow_runs WHERE status = 'running' AND"
              " (owner IS NULL OR lease_until IS NULL OR lease_until <= $3"
              "  OR owner IN (SELECT jsonb_array_elements_text($4::jsonb))) AND"
              " ($8::boolean OR owner IS NOT NULL OR lease_until IS NOT NULL) AND"
              " ($5::boolean OR EXISTS (SELECT 1 FROM jsonb_array_elements($6::jsonb) w"
              "  WHERE w ->> 0 = workflow_name AND (w ->> 1)::bigint = workflow_version))"
              " ORDER BY created_at, ord LIMIT $7 FOR UPDATE SKIP LOCKED),"
              " claimed AS (UPDATE workflow_runs r SET owner = $1, lease_until = $2 FROM picked"
              " WHERE r.id = picked.id RETURNING r.id, picked.created_at, picked.ord)"
              " SELECT id FROM claimed ORDER BY created_at, ord");
    c.prepare("renew",
              "UPDATE workflow_runs SET lease_until = $3 WHERE id IN "
              "(SELECT jsonb_array_elements_text($2::jsonb)) AND owner = $1 AND status = 'running' RETURNING id");
    c.prepare("release",
              "UPDATE workflow_runs SET owner = NULL, lease_until = $3 WHERE id IN "
              "(SELECT jsonb_array_elements_text($2::jsonb)) AND owner = $1");
}

void prepare_reader(pqxx::connection& c) {
    constexpr const char* definition = "SELECT name, version, hash, definition, created_at FROM workflow_definitions ";
    c.prepare("latest_definition", std::string(definition) + "WHERE name = $1 ORDER BY version DESC LIMIT 1");
    c.prepare("definition", std::string(definition) + "WHERE name = $1 AND version = $2");
    c.prepare("definitions", std::string(definition) + "ORDER BY name, version");
    c.prepare("run", fmt::format("SELECT {} FROM workflow_runs WHERE id = $1", kRunColumns));
    c.prepare("run_by_key", "SELECT id FROM workflow_runs WHERE idempotency_key = $1");
    c.prepare("steps",
              "SELECT step_id, status, attempts, output, error, started_at, finished_at, wake_at, attempt_base "
              "FROM step_runs WHERE run_id = $1 ORDER BY position");
    c.prepare("items",
              "SELECT step_id, idx, status, attempts, output, error, started_at, finished_at, wake_at, "
              "attempt_base FROM step_items WHERE run_id = $1 ORDER BY step_id, idx");
    c.prepare("unfinished", "SELECT id FROM workflow_runs WHERE status = 'running' ORDER BY created_at, ord");
    c.prepare("events",
              "SELECT seq, run_id, step_id, kind, attempt, detail, at FROM run_events WHERE run_id = $1 "
              "ORDER BY seq");
    c.prepare("logs",
              "SELECT run_id, step_id, item, attempt, level, message, at FROM run_logs "
              "WHERE run_id = $1 AND ($2 = '' OR step_id = $2) ORDER BY ord");
    c.prepare("owners",
              "SELECT DISTINCT owner FROM workflow_runs WHERE status = 'running' AND owner IS NOT NULL");
    c.prepare("last_seq", "SELECT last_seq FROM event_counter");
    c.prepare("controlled",
              "SELECT id FROM workflow_runs WHERE owner = $1 AND status = 'running' AND control_seq > $2");
}

}  // namespace loom::detail::pg
