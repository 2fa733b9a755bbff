// The SQL of PostgresStore: every statement it runs more than once, prepared on
// each new connection (prepared statements belong to a connection). Internal.
#pragma once

#include <pqxx/pqxx>

namespace loom::detail::pg {

/// The columns of workflow_runs that make a RunInfo, in the order read_run reads them.
inline constexpr const char* kRunColumns =
    "id, workflow_name, workflow_version, workflow_hash, status, cancel_requested, input, "
    "output, error, created_at, updated_at, finished_at, idempotency_key, priority, paused, owner, "
    "lease_until";

/// The statements of the writing connection (commits, claims, leases).
void prepare_writer(pqxx::connection& c);

/// The statements of the reading connection.
void prepare_reader(pqxx::connection& c);

}  // namespace loom::detail::pg
