// For tests of PostgresStore: a fresh, empty schema in the test server's
// database (LOOM_PG_URL, set by tests/cmake/postgres.cmake), dropped afterwards,
// and the server's controls (tests/support/pg_server.sh).
#pragma once

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <pqxx/pqxx>
#include <unistd.h>

namespace loom::test {

/// The test server's connection string; throws if the test runs without one.
inline std::string pg_url() {
    const char* url = std::getenv("LOOM_PG_URL");
    if (!url || !*url) {
        throw std::runtime_error(
            "LOOM_PG_URL is not set: run PostgreSQL tests through ctest, which starts the test "
            "server (tests/cmake/postgres.cmake)");
    }
    return url;
}

/// Runs tests/support/pg_server.sh `command` on the test server (restart,
/// down, up); throws if it fails.
inline void pg_server(const std::string& command) {
    const char* script = std::getenv("LOOM_PG_SERVER");
    const char* dir = std::getenv("LOOM_PG_DIR");
    if (!script || !dir) throw std::runtime_error("LOOM_PG_SERVER or LOOM_PG_DIR is not set: run through ctest");
    const std::string line = "bash '" + std::string(script) + "' " + command + " '" + dir + "'";
    if (std::system(line.c_str()) != 0) throw std::runtime_error("failed: " + line);
}

class PgSchema {
public:
    PgSchema() {
        static std::atomic<int> counter{0};
        name_ = "loom_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        url_ = pg_url() + " options='-csearch_path=" + name_ + "'";
        pqxx::connection admin(pg_url());
        pqxx::nontransaction tx(admin);
        tx.exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
        tx.exec("CREATE SCHEMA " + name_);
    }
    ~PgSchema() {
        try {
            pqxx::connection admin(pg_url());
            pqxx::nontransaction tx(admin);
            tx.exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
        } catch (const std::exception&) {
            // The server may be down at the end of a test that stopped it;
            // the next run starts a fresh cluster anyway.
        }
    }
    PgSchema(const PgSchema&) = delete;
    PgSchema& operator=(const PgSchema&) = delete;

    /// The connection string of a store in this schema.
    const std::string& url() const { return url_; }
    const std::string& name() const { return name_; }

private:
    std::string name_;
    std::string url_;
};

}  // namespace loom::test
