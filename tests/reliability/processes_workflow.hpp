// What test_processes shares with its worker processes (loom_worker_child):
// the workflow every process runs and the ledger each handler call appends to.
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <loom/loom.hpp>
#ifdef LOOM_TEST_POSTGRES
#include <loom/postgres_store.hpp>
#endif

namespace loom::test {

/// The store every process opens: a libpq connection string ("host=...") is
/// a PostgreSQL database, anything else a SQLite file. SQLite writers wait up
/// to a minute for the file's lock, not 5 s: these tests check who runs what,
/// and under ThreadSanitizer four processes on two cores saw a commit wait
/// out 5 s (SQLite's lock is not fair), abandon its runs and, rightly, another
/// process run their uncommitted steps again. A timed-out lock and a failed
/// commit have their own tests ("a write that outwaits the busy timeout is a
/// StoreError", "a failed commit surfaces as StoreError and recover resumes
/// the run").
inline std::unique_ptr<Store> open_shared_store(const std::string& where) {
#ifdef LOOM_TEST_POSTGRES
    if (where.rfind("host=", 0) == 0) return std::make_unique<PostgresStore>(where);
#endif
    SqliteOptions options;
    options.busy_timeout = std::chrono::minutes(1);
    return std::make_unique<SqliteStore>(where, options);
}

/// Five steps in a chain, each retried (an attempt cut off by a kill runs again).
inline Workflow processes_workflow() {
    RetryPolicy retry;
    retry.max_attempts = 5;
    retry.initial_backoff = std::chrono::milliseconds(10);
    WorkflowBuilder b("shared", 1);
    b.default_retry(retry);
    const char* previous = nullptr;
    for (const char* id : {"s1", "s2", "s3", "s4", "s5"}) {
        b.step(id, "work");
        if (previous) b.after(previous);
        previous = id;
    }
    return b.build();
}

inline constexpr int processes_step_count() { return 5; }

/// A worker's store that can stop its process (SIGSTOP) between writes: a
/// stopped SQLite writer would lock every process out of the file, and any of
/// the executor's threads (commits, claims, lease renewals) may be inside a
/// write when a handler stops the process. (PostgreSQL ends such a session.)
class StoppableStore : public StoreWrapper {
    std::shared_mutex writes_;   // shared by each write, taken whole to stop
    template <class F>
    auto write(F&& f) -> decltype(f()) {
        std::shared_lock during(writes_);
        return f();
    }

public:
    using StoreWrapper::StoreWrapper;
    /// Stops the process once no write is under way, and lets writes go on
    /// after SIGCONT.
    void stop() {
        std::unique_lock quiet(writes_);
        ::raise(SIGSTOP);
    }
    bool save_workflow(const WorkflowRecord& w) override { return write([&] { return target().save_workflow(w); }); }
    bool replace_workflow(const WorkflowRecord& w) override {
        return write([&] { return target().replace_workflow(w); });
    }
    void commit(const Batch& batch) override { write([&] { target().commit(batch); }); }
    std::vector<RunId> claim_runs(const ClaimRequest& request) override {
        return write([&] { return target().claim_runs(request); });
    }
    std::vector<RunId> renew_leases(const std::string& owner, const std::vector<RunId>& ids, TimePoint until) override {
        return write([&] { return target().renew_leases(owner, ids, until); });
    }
    void release_runs(const std::string& owner, const std::vector<RunId>& ids) override {
        write([&] { target().release_runs(owner, ids); });
    }
};

/// The "work" handler: appends "run step attempt pid" to the ledger, fsynced
/// so that the line survives a kill, then works for `busy`. With `stop_at`, the
/// first call of that step stops its process through `store` after its line.
inline void add_ledger_handler(HandlerRegistry& handlers, int ledger_fd, std::chrono::milliseconds busy,
                               std::string stop_at = {}, StoppableStore* store = nullptr) {
    auto stopped = std::make_shared<std::atomic<bool>>(false);
    handlers.add("work", [ledger_fd, busy, stop_at, stopped, store](StepContext& ctx) -> Json {
        const std::string line = ctx.run_id() + " " + ctx.step_id() + " " + std::to_string(ctx.attempt()) + " " +
                                 std::to_string(::getpid()) + "\n";
        if (::write(ledger_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
            ::fsync(ledger_fd) != 0)
            ::_exit(3);
        if (store && ctx.step_id() == stop_at && !stopped->exchange(true)) store->stop();
        std::this_thread::sleep_for(busy);
        return ctx.step_id();
    });
}

}  // namespace loom::test
