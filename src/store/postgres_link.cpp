// PgLink's connection handling and commit tracking; the retry loop itself is a
// template in the header.
#include "store/postgres_link.hpp"

#include <cstring>

namespace loom::detail {

PgFailure classify(const std::exception& e) noexcept {
    if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) return PgFailure::in_doubt;
    if (dynamic_cast<const pqxx::broken_connection*>(&e)) return PgFailure::connection;
    // The server cannot tell whether the statement completed; the connection is
    // dropped, and with it the transaction, which never got to COMMIT.
    if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e)) return PgFailure::connection;
    if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return PgFailure::rollback;
    if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return PgFailure::rollback;
    if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
        const std::string& state = sql->sqlstate();
        // The server always sends a SQLSTATE: none means the client lost it
        // (seen when a crash-restart cut a statement off under load).
        if (state.empty()) return PgFailure::connection;
        // 08: connection exceptions; 57P01-57P03: the server is shutting down,
        // crashed, or not accepting connections yet (restarting).
        if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) return PgFailure::connection;
        if (state == "40001" || state == "40P01") return PgFailure::rollback;
        return PgFailure::fatal;
    }
    return PgFailure::fatal;
}

PgLink::PgLink(std::string conninfo, std::chrono::milliseconds budget,
               std::function<void(pqxx::connection&)> prepare)
    : conninfo_(std::move(conninfo)), budget_(budget), prepare_(std::move(prepare)) {}

PgLink::~PgLink() = default;

void PgLink::track_commits(std::string writer) {
    MutexLock lock(mutex_);
    writer_ = std::move(writer);
    commits_ = 0;
}

pqxx::connection& PgLink::connection() {
    if (conn_ && conn_->is_open()) return *conn_;
    conn_.reset();
    // A broken connection is replaced rather than left to libpqxx's own
    // reactivation, so that recovery is decided here, in one place.
    auto fresh = std::make_unique<pqxx::connection>(conninfo_);
    if (prepare_) prepare_(*fresh);
    conn_ = std::move(fresh);
    return *conn_;
}

std::optional<std::int64_t> PgLink::begin_tracked(pqxx::transaction_base& tx) {
    if (writer_.empty()) return std::nullopt;
    const std::int64_t next = commits_ + 1;
    // The row stays locked until this transaction ends, so lookup_commit()
    // cannot read it while the transaction might still commit.
    const pqxx::result r = tx.exec_params("UPDATE store_commits SET commits = $2 WHERE writer = $1", writer_, next);
    if (r.affected_rows() != 1) {
        throw StoreError(error_id::store_corrupt, "the commit-tracking row of writer " + writer_ +
                                                      " is missing from store_commits");
    }
    return next;
}

std::int64_t PgLink::next_commit() {
    if (writer_.empty()) throw StoreError(error_id::store_io, "PgLink::call() on a link whose commits are not tracked");
    return commits_ + 1;
}

bool PgLink::lookup_commit(std::int64_t commit_no, std::chrono::steady_clock::time_point deadline) {
    pqxx::work tx(connection());
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    // The old session may still hold the row (its backend has not yet noticed
    // the lost client); wait for it to finish, within the budget.
    tx.exec("SET LOCAL lock_timeout = " + std::to_string(std::max<std::int64_t>(left.count(), 1)));
    const pqxx::result r = tx.exec_params("SELECT commits FROM store_commits WHERE writer = $1 FOR UPDATE", writer_);
    if (r.empty()) {
        throw StoreError(error_id::store_corrupt, "the commit-tracking row of writer " + writer_ +
                                                      " is missing from store_commits");
    }
    const std::int64_t stored = r[0][0].as<std::int64_t>();
    tx.commit();
    return stored >= commit_no;
}

}  // namespace loom::detail
