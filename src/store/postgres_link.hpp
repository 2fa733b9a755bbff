// One PostgreSQL connection that rides out connection loss for PostgresStore.
// Every transaction runs through transact(): a transaction known not to have
// committed (the connection broke before COMMIT, a deadlock, a serialization
// failure, a restarting server) is run again on a new connection; one whose
// COMMIT the lost connection hid is looked up (commit tracking), never run
// twice blindly. What cannot be ridden out within the budget is a StoreError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <algorithm>

#include <pqxx/pqxx>

#include <loom/error.hpp>
#include <loom/error_ids.hpp>
#include <loom/json.hpp>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// How a failed attempt of a transaction ended.
enum class PgFailure {
    connection,   // the connection (or the server) went away before COMMIT: not committed
    rollback,     // deadlock or serialization failure: rolled back by the server
    in_doubt,     // the connection went away during COMMIT: outcome unknown
    fatal,        // anything else: give up at once
};

/// Sorts a libpqxx exception into a PgFailure.
PgFailure classify(const std::exception& e) noexcept;

class PgLink {
public:
    /// `prepare` runs on every new connection (prepared statements are per
    /// connection). Connects lazily, on the first transaction.
    PgLink(std::string conninfo, std::chrono::milliseconds budget,
           std::function<void(pqxx::connection&)> prepare);
    ~PgLink();
    PgLink(const PgLink&) = delete;
    PgLink& operator=(const PgLink&) = delete;

    /// From now on every transaction is tracked: it bumps this link's row in
    /// store_commits (which `writer` names; the row must exist), so that a
    /// COMMIT that the connection lost can be looked up afterwards. Until then
    /// a COMMIT in doubt is simply run again, so an untracked link must run
    /// only transactions that are safe to run twice: reads, migrations (they
    /// re-read the version), idempotent inserts.
    void track_commits(std::string writer);

    /// Runs f(tx) in a transaction of type Tx and commits it, under the link's
    /// mutex; retries as the file comment says. `describe()` names what the
    /// transaction does, for the error. Throws what f throws (a loom::Error,
    /// after the transaction is rolled back), and StoreError
    /// "[loom.store.io]" for a failure it could not ride out,
    /// "[loom.store.corrupt]" for stored JSON it cannot read.
    template <class Tx, class F, class Describe>
    auto transact(const Describe& describe, F&& f) {
        using R = decltype(f(std::declval<Tx&>()));
        if constexpr (std::is_void_v<R>) {
            run<Tx>(describe, [&](Tx& tx) { f(tx); return true; });
        } else {
            return run<Tx>(describe, std::forward<F>(f));
        }
    }

    /// As transact(), for a transaction that is one statement in autocommit
    /// mode: one round trip, where transact() has three at least (BEGIN, a
    /// statement, COMMIT). f(tx, commit_no) sends that statement, which must
    /// itself record commit_no in the link's store_commits row (see
    /// track_commits; commits must be tracked), so that a reply the
    /// connection lost can be looked up as a COMMIT's can. f returns nothing:
    /// found committed after a lost reply, the statement has no result to give.
    template <class F, class Describe>
    void call(const Describe& describe, F&& f) {
        static_assert(std::is_void_v<decltype(f(std::declval<pqxx::nontransaction&>(), std::int64_t{}))>);
        run<pqxx::nontransaction>(describe, [&](pqxx::nontransaction& tx, std::int64_t commit_no) {
            f(tx, commit_no);
            return true;
        });
    }

private:
    // The retry budget of one transact() call and its back-off.
    struct Attempts {
        explicit Attempts(std::chrono::milliseconds budget)
            : deadline(std::chrono::steady_clock::now() + budget) {}
        std::chrono::steady_clock::time_point deadline;
        std::chrono::milliseconds pause{10};
        int count = 1;
    };

    // transact() for an f that returns a value, and call(). The value is kept
    // until the COMMIT's outcome is known: a transaction found committed after
    // a lost reply returns what it computed.
    template <class Tx, class F, class Describe>
    auto run(const Describe& describe, F&& f) {
        // In autocommit mode the statement is the COMMIT.
        constexpr bool autocommit = std::is_same_v<Tx, pqxx::nontransaction>;
        MutexLock lock(mutex_);
        Attempts attempts(budget_);
        for (;;) {
            std::optional<std::int64_t> commit_no;
            std::optional<decltype(invoke(f, std::declval<Tx&>(), commit_no))> result;
            try {
                Tx tx(connection());
                commit_no = autocommit ? next_commit() : begin_tracked(tx);
                committing_ = autocommit;
                result.emplace(invoke(f, tx, commit_no));
                committing_ = true;
                tx.commit();
                committing_ = false;
                if (commit_no) commits_ = *commit_no;
                return std::move(*result);
            } catch (const Error&) {
                committing_ = false;
                throw;
            } catch (const nlohmann::json::exception& e) {
                committing_ = false;
                throw StoreError(error_id::store_corrupt,
                                 describe() + ": stored JSON is unreadable: " + e.what());
            } catch (const std::exception& e) {
                if (recover(e, commit_no, attempts, describe)) return std::move(*result);
            }
        }
    }

    // f(tx) for transact(), f(tx, commit number) for call().
    template <class F, class Tx>
    static auto invoke(F& f, Tx& tx, const std::optional<std::int64_t>& commit_no) {
        if constexpr (std::is_same_v<Tx, pqxx::nontransaction>) {
            return f(tx, *commit_no);
        } else {
            (void)commit_no;
            return f(tx);
        }
    }

    pqxx::connection& connection() LOOM_REQUIRES(mutex_);

    // The number the next tracked transaction records (call()).
    std::int64_t next_commit() LOOM_REQUIRES(mutex_);

    // Bumps the link's row in store_commits when commits are tracked (holding
    // that row's lock until the transaction ends); returns the number this
    // transaction writes there.
    std::optional<std::int64_t> begin_tracked(pqxx::transaction_base& tx) LOOM_REQUIRES(mutex_);

    // Decides after a failed attempt: returns false to run the transaction
    // again, true if it committed after all; throws StoreError to give up.
    template <class Describe>
    bool recover(const std::exception& e, std::optional<std::int64_t> commit_no, Attempts& attempts,
                 const Describe& describe) LOOM_REQUIRES(mutex_) {
        PgFailure failure = classify(e);
        // A connection lost while COMMIT was on its way may have lost only the reply.
        if (committing_ && failure == PgFailure::connection) failure = PgFailure::in_doubt;
        committing_ = false;
        if (failure == PgFailure::fatal) throw StoreError(error_id::store_io, describe() + ": " + e.what());
        if (failure != PgFailure::rollback) conn_.reset();
        // Untracked transactions are safe to run twice (see track_commits).
        if (failure == PgFailure::in_doubt && commit_no) {
            if (committed(*commit_no, attempts, describe)) {
                commits_ = *commit_no;
                return true;
            }
        }
        wait_or_give_up(attempts, describe, e.what());
        return false;
    }

    // After an in-doubt COMMIT: whether tracked transaction `commit_no`
    // committed, asked on a new connection (retried within the budget).
    template <class Describe>
    bool committed(std::int64_t commit_no, Attempts& attempts, const Describe& describe)
        LOOM_REQUIRES(mutex_) {
        for (;;) {
            try {
                return lookup_commit(commit_no, attempts.deadline);
            } catch (const Error&) {
                throw;
            } catch (const std::exception& e) {
                if (classify(e) == PgFailure::fatal) {
                    throw StoreError(error_id::store_io,
                                     describe() + ": looking up whether its COMMIT took effect: " + e.what());
                }
                conn_.reset();
                wait_or_give_up(attempts, describe,
                                std::string("the COMMIT's outcome is unknown: ") + e.what());
            }
        }
    }

    // Sleeps before the next attempt, or throws StoreError when the budget is spent.
    template <class Describe>
    void wait_or_give_up(Attempts& attempts, const Describe& describe, const std::string& why) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= attempts.deadline) {
            throw StoreError(error_id::store_io, describe() + ": gave up after " +
                                                     std::to_string(attempts.count) + " attempts within " +
                                                     std::to_string(budget_.count()) + " ms: " + why);
        }
        const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(attempts.deadline - now);
        std::this_thread::sleep_for(std::min(attempts.pause, remaining));
        attempts.pause = std::min(attempts.pause * 2, std::chrono::milliseconds(500));
        ++attempts.count;
    }

    bool lookup_commit(std::int64_t commit_no, std::chrono::steady_clock::time_point deadline)
        LOOM_REQUIRES(mutex_);

    const std::string conninfo_;
    const std::chrono::milliseconds budget_;
    const std::function<void(pqxx::connection&)> prepare_;

    Mutex mutex_;
    std::unique_ptr<pqxx::connection> conn_ LOOM_GUARDED_BY(mutex_);
    std::string writer_ LOOM_GUARDED_BY(mutex_);     // empty: commits not tracked
    std::int64_t commits_ LOOM_GUARDED_BY(mutex_) = 0;
    bool committing_ LOOM_GUARDED_BY(mutex_) = false;   // inside tx.commit()
};

}  // namespace loom::detail
