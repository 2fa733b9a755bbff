// What the crash tests (test_crash, test_crash_saga) share with the processes
// they SIGKILL (loom_crash_child, loom_crash_saga_child): spawning, killing and
// waiting for a child (test_contention spawns and waits for its child too),
// the fsynced ledger of handler calls a child writes and its test reads, and
// what the store held at each kill.
//
// The test tells a crash child how to die through its environment:
//   LOOM_CRASH_AFTER=N     SIGKILL itself after the N-th ledger append (0: never)
//   LOOM_FAILPOINT=NAME:N  SIGKILL at the N-th hit of executor failpoint NAME
//                          ("*" counts them all; N = 0 only counts)
//   LOOM_CRASH_THREADS=N   the executor's threads
// No Catch2 here: the child processes link this file too.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <loom/loom.hpp>

namespace loom::test::crash {

// ---- In the child process ----

/// Reads LOOM_CRASH_AFTER and LOOM_FAILPOINT and opens the ledger for
/// appending; false (after perror) if it cannot be opened.
bool start_child(const char* ledger_path);
/// LOOM_CRASH_THREADS, or `fallback`.
unsigned child_threads(unsigned fallback);
/// Appends "step attempt pid" to the ledger and fsyncs it, so that the line
/// survives the kill (exits 3 if it cannot); SIGKILLs the process after the
/// LOOM_CRASH_AFTER-th append.
void append_ledger(const std::string& step, int attempt);
/// Sleeps up to 2 ms: widens the windows in which steps are in flight.
void jitter();
/// Prints "failpoint hits N" (see failpoint_hits()): on a clean exit.
void print_failpoint_hits();

// ---- In the test process ----

/// Variables to set in a child's environment; an empty value unsets one.
using Env = std::vector<std::pair<std::string, std::string>>;

/// Forks and execs argv[0] with argv, `env` and its stdout on `stdout_fd`.
/// Throws std::system_error if it cannot fork.
pid_t spawn(const std::vector<std::string>& argv, const Env& env, int stdout_fd);

struct Exit {
    bool killed = false;   // by a signal
    bool hung = false;     // still running after the hang limit: SIGKILLed by the test
    int code = 0;          // the exit code, or the signal
    std::string out;       // what it printed (run_child only)
};

/// Waits for the child to end; SIGKILLs it once it has run `hang_limit`.
/// Throws std::system_error if waitpid fails.
Exit wait_child(pid_t pid, std::optional<std::chrono::milliseconds> hang_limit = std::nullopt);

/// How a crash child is to die, if it does.
struct Kill {
    int in_handler = 0;            // SIGKILL itself after the N-th ledger append
    std::string failpoint;         // or at an executor failpoint, "NAME:N"
    std::optional<std::chrono::microseconds> after;   // or be killed after this long
};

/// Runs a crash child to its end: dying as `kill` says, with `threads`
/// executor threads and `env` besides, its stdout in the file `out_path`.
Exit run_child(const std::vector<std::string>& argv, const Kill& kill, unsigned threads,
               const std::string& out_path, const Env& env = {},
               std::optional<std::chrono::milliseconds> hang_limit = std::nullopt);

/// The N of the "failpoint hits N" a clean child printed.
long failpoint_hits(const std::string& out);

/// The kill for a recovering process: while a trial has had fewer than 5
/// kills, now and then in one of its first `handler_calls` handler calls or
/// at one of its first 40 failpoints; otherwise none.
Kill recovery_kill(std::mt19937& rng, int kills_so_far, std::size_t handler_calls);

/// LOOM_CRASH_TRIALS, or `fallback`.
int trials_from_env(int fallback);

struct LedgerLine {
    std::string step;   // the key a child wrote: a step id, or a prefix and one
    int attempt = 0;
    std::string pid;
};

std::vector<LedgerLine> read_ledger(const std::string& path);
/// The steps (keys) of the lines.
std::set<std::string> keys_in(const std::vector<LedgerLine>& ledger);

/// Every run in the SQLite file, with its steps.
std::vector<RunInfo> stored_runs(const std::string& db);

/// What one process had done when it was killed.
struct Snapshot {
    std::map<std::string, StepInfo> steps;   // committed, of every run, by step id, with their items
    std::size_t ledger_from = 0;   // its ledger lines: [ledger_from, ledger_to)
    std::size_t ledger_to = 0;
};

/// Whether a kill found the outcome of a ledger line's call committed.
using Settled = std::function<bool(const Snapshot&, const LedgerLine&)>;

/// Whether ledger line `i` was a call in flight at a kill that came before
/// line `next`: its process was killed before it and had not `settled` it.
bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots, const Settled& settled);

}  // namespace loom::test::crash
