// What test_processes shares with its worker processes (loom_worker_child):
// the workflow every process runs and the ledger each handler call appends to.
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
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
/// a PostgreSQL database, anything else a SQLite file.
inline std::unique_ptr<Store> open_shared_store(const std::string& where) {
#ifdef LOOM_TEST_POSTGRES
    if (where.rfind("host=", 0) == 0) return std::make_unique<PostgresStore>(where);
#endif
    return std::make_unique<SqliteStore>(where);
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

/// The "work" handler: appends "run step attempt pid" to the ledger, fsynced
/// so that the line survives a kill, then works for `busy`. With `stop_at`, the
/// first call of that step stops its process (SIGSTOP) after its line: inside
/// a handler, where it holds no transaction that would lock others out.
inline void add_ledger_handler(HandlerRegistry& handlers, int ledger_fd, std::chrono::milliseconds busy,
                               std::string stop_at = {}) {
    auto stopped = std::make_shared<std::atomic<bool>>(false);
    handlers.add("work", [ledger_fd, busy, stop_at, stopped](StepContext& ctx) -> Json {
        const std::string line = ctx.run_id() + " " + ctx.step_id() + " " + std::to_string(ctx.attempt()) + " " +
                                 std::to_string(::getpid()) + "\n";
        if (::write(ledger_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
            ::fsync(ledger_fd) != 0)
            ::_exit(3);
        if (ctx.step_id() == stop_at && !stopped->exchange(true)) ::raise(SIGSTOP);
        std::this_thread::sleep_for(busy);
        return ctx.step_id();
    });
}

}  // namespace loom::test
