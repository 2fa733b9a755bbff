// SqliteStore's schema: ordered, forward-only migrations, each applied in its own
// transaction and recorded in schema_migrations. Internal; tests use migrate() to
// build databases as older Loom versions left them.
#pragma once

#include <string>

namespace SQLite {
class Database;
}

namespace loom::detail {

/// The highest schema version this library knows.
int latest_schema_version() noexcept;

/// The database's schema version: max(schema_migrations.version), 0 when empty.
/// Throws SQLite::Exception.
int schema_version(SQLite::Database& db);

/// Throws StoreError "[loom.store.schema_too_new]" if the database is newer than
/// this library; reads only, so a refused file is left as it was.
void check_schema_version(SQLite::Database& db, const std::string& path);

/// Applies every migration above the current version up to `target` (the latest
/// by default), each in a BEGIN IMMEDIATE transaction that re-reads the version,
/// so processes opening one file together apply each migration once. A migration
/// that rebuilds a table runs with foreign keys off (restored afterwards) and
/// keeps the table's indexes and triggers. Throws StoreError
/// "[loom.store.schema_too_new]", StoreError "[loom.store.migration_failed]" (a
/// rebuild found a row without its foreign key's parent) and SQLite::Exception.
void migrate(SQLite::Database& db, const std::string& path, int target = latest_schema_version());

}  // namespace loom::detail
