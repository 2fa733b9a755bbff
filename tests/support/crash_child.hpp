// What the crash tests (test_crash, test_crash_saga) share with the processes
// they SIGKILL (loom_crash_child, loom_crash_saga_child): the child's half of
// the ledger of handler calls and of its kills, and spawning and waiting for a
// child (test_contention spawns and waits for its child too). The tests' half
// (killing, reading the ledger and the store, the trials) is crash_torture.hpp.
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
#include <optional>
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

}  // namespace loom::test::crash
