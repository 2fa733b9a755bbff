// The crash-torture harness: what the crash tests (test_crash, test_crash_saga)
// do alike. A torture runs trials of its Scenario, a child program that runs
// workflows on SQLite and writes an fsynced ledger of its handler calls. A
// trial starts a child that dies as its first Kill says (inside its N-th
// handler call, at the N-th hit of an executor failpoint, or SIGKILLed after a
// delay), then recovering children, killed now and then at random, until one
// ends cleanly; at each kill it keeps a Snapshot of what the store held. The
// test then checks its promises against the ledger and the snapshots.
//
//     const crash::Scenario scenario{prepare, run_child, stored_runs};
//     loom::test::TempDir dir;
//     const auto clean = crash::clean_run(scenario, dir);   // the reference: ledger, failpoint hits
//     const auto kills = crash::run_trials(crash::failpoint_sweep("*", clean.failpoint_hits, 0), 1,
//         [&](const crash::Kill& first, unsigned seed, unsigned threads) {
//             loom::test::TempDir dir;
//             const auto snapshots = crash::run_trial(scenario, dir, first, seed, threads, calls);
//             ...check the runs, crash::read_ledger(dir) and the snapshots...
//             return crash::count_kills(snapshots, count_found);   // found: kills.add("while asleep", ...)
//         });
//     WARN("failpoint trials: " << kills);
//
// Test process only: it checks with Catch2 (the children link crash_child.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <loom/loom.hpp>

#include "support/crash_child.hpp"
#include "support/temp_dir.hpp"

namespace loom::test::crash {

// ---- One child process ----

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

// ---- A trial's files: its directory holds the store, the ledger, the child's stdout ----

std::string db_file(const TempDir& dir);       // runs.db
std::string ledger_file(const TempDir& dir);   // ledger
std::string out_file(const TempDir& dir);      // out

struct LedgerLine {
    std::string step;   // the key a child wrote: a step id, or a prefix and one
    int attempt = 0;
    std::string pid;
};

std::vector<LedgerLine> read_ledger(const std::string& path);
/// The ledger of the trial in `dir`.
std::vector<LedgerLine> read_ledger(const TempDir& dir);
/// The steps (keys) of the lines.
std::set<std::string> keys_in(const std::vector<LedgerLine>& ledger);

/// Every run in the SQLite file, with its steps.
std::vector<RunInfo> stored_runs(const std::string& db);

// ---- A trial ----

/// What one process had done when it was killed.
struct Snapshot {
    std::vector<RunInfo> runs;               // as Scenario::runs read them
    std::map<std::string, StepInfo> steps;   // committed, of every run, by step id, with their items
    std::size_t ledger_from = 0;   // its ledger lines: [ledger_from, ledger_to)
    std::size_t ledger_to = 0;
    bool hung = false;             // killed by its hang limit (Exit::hung)
};

/// A torture's child program, as the harness runs it.
struct Scenario {
    /// Readies a new trial's directory before its first process; may be empty.
    std::function<void(const TempDir& dir)> prepare;
    /// Runs one child on the trial's files to its end, dying as `kill` says.
    std::function<Exit(const TempDir& dir, const Kill& kill, unsigned threads)> run_child;
    /// The runs stored in the trial's SQLite file, checked as the scenario requires.
    std::function<std::vector<RunInfo>(const TempDir& dir)> runs;
};

/// An uncrashed process: what its handlers did and how many failpoints it passed.
struct CleanRun {
    std::vector<LedgerLine> ledger;
    long failpoint_hits = 0;                  // of `failpoint`, with 1 thread
    std::chrono::microseconds duration{0};    // start to exit
};

/// Runs one clean child in the fresh directory `dir`, with 1 thread, counting
/// the passes of failpoint `failpoint` ("*": all); it must exit 0.
CleanRun clean_run(const Scenario& scenario, const TempDir& dir, const std::string& failpoint = "*");

/// Runs one trial to completion in the fresh directory `dir`: the first
/// process dies as `first` says, the recovering ones as recovery_kill() says
/// (seeded by `seed`, with `handler_calls` those of a clean run) until one
/// exits 0 with a run stored; at most 30 processes. Returns each kill's snapshot.
std::vector<Snapshot> run_trial(const Scenario& scenario, const TempDir& dir, const Kill& first, unsigned seed,
                                unsigned threads, std::size_t handler_calls);

// ---- Checks ----

/// Whether a kill found the outcome of a ledger line's call committed.
using Settled = std::function<bool(const Snapshot&, const LedgerLine&)>;

/// Whether ledger line `i` was a call in flight at a kill that came before
/// line `next`: its process was killed before it and had not `settled` it.
bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots, const Settled& settled);

/// Calls `check(snapshot, i)` for every ledger line `i` written after a kill:
/// what that kill found committed must not have run again.
void for_each_call_after_kill(const std::vector<LedgerLine>& ledger, const std::vector<Snapshot>& snapshots,
                              const std::function<void(const Snapshot&, std::size_t i)>& check);

/// Calls `check(i, previous)` for every ledger line `i` whose key ran before,
/// last at line `previous`: each such re-run needs a reason.
void for_each_rerun(const std::vector<LedgerLine>& ledger,
                    const std::function<void(std::size_t i, std::size_t previous)>& check);

/// Checks that each step of `got`, and each of its for_each elements, ended as
/// in `ref`, an uncrashed run: status, output and error (not attempts: kills
/// in flight add some).
void check_steps_end_as(const RunInfo& got, const RunInfo& ref);

/// Checks the SQLite file after a trial: `PRAGMA integrity_check` is ok and no run is unfinished.
void check_store(const std::string& db);

// ---- Many trials ----

/// A trial's first kill and the seed of its recovering kills.
struct Plan {
    Kill first;
    unsigned seed = 0;
    std::string what;   // for the test's report: "first kill at ..."
};

/// A kill at each hit 1..`hits` of failpoint `name` ("*": any), seeds `seed_base` + hit.
std::vector<Plan> failpoint_sweep(const std::string& name, long hits, unsigned seed_base);
/// A kill in each handler call 1..`calls`, seeds 1000 + call.
std::vector<Plan> handler_sweep(int calls);
/// `trials` kills at random moments in [0, `window_us`) µs, delays and seeds drawn from one generator seeded `seed`.
std::vector<Plan> random_moments(unsigned seed, int trials, unsigned long window_us);

/// LOOM_CRASH_TRIALS, or `fallback`.
int trials_from_env(int fallback);

/// What the kills of one trial, or of many, found: how many there were and,
/// for each thing a scenario counts, how often it was found. A thing is named
/// as the report says it: "kills: 138 (61 while a retry waited, 66 while asleep)".
class Kills {
public:
    int total = 0;

    /// Adds `n` to the count of `what`; the report lists them in the order first added.
    void add(const std::string& what, int n);
    /// The count of `what`, 0 if never added.
    int operator[](const std::string& what) const;
    Kills& operator+=(const Kills& other);

    friend std::ostream& operator<<(std::ostream& out, const Kills& kills);

private:
    std::vector<std::pair<std::string, int>> found_;
};

/// Adds to `kills` what a scenario counts in one kill's snapshot.
using Count = std::function<void(const Snapshot& snapshot, Kills& kills)>;

/// The kills of a trial: one per snapshot, and what `count` found in each.
Kills count_kills(const std::vector<Snapshot>& snapshots, const Count& count);

/// One trial: runs it with this first kill, seed and threads, checks it and counts its kills.
using Trial = std::function<Kills(const Kill& first, unsigned seed, unsigned threads)>;

/// Runs `trial` for each plan, naming the plan in what Catch reports of it,
/// and sums the kills.
Kills run_trials(const std::vector<Plan>& plans, unsigned threads, const Trial& trial);

}  // namespace loom::test::crash
