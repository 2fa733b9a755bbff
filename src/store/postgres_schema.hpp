// PostgresStore's schema: ordered, forward-only migrations, each applied in its
// own transaction under an advisory lock and recorded in schema_migrations, as
// SqliteStore's are. Internal; tests use migrate() with a target to build
// databases as older versions left them.
#pragma once

#include <string>

#include <pqxx/pqxx>

namespace loom::detail::pg {

/// The highest schema version this library knows.
int latest_schema_version() noexcept;

/// The schema version of the connection's current schema: 0 when empty.
int schema_version(pqxx::transaction_base& tx);

/// Applies one pending migration (the next above the current version, if it
/// is at most `target`) in `tx`, which it locks first so that executors
/// opening one database together apply each migration once. Returns false when
/// none was pending. Throws StoreError "[loom.store.schema_too_new]" naming
/// `where` for a database newer than this library, and pqxx errors.
bool migrate_step(pqxx::transaction_base& tx, const std::string& where,
                  int target = latest_schema_version());

}  // namespace loom::detail::pg
