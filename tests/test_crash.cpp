// Crash test: a child process runs a parallel workflow on SQLite and is
// SIGKILLed — inside handlers, at every executor failpoint in turn (a retry's
// or a sleep's wake among them), and at random moments — and again, several
// times, while it recovers. After each kill the test reads what was committed;
// the fsynced ledger of (step, attempt, process) the handlers write then proves
// that nothing committed ever ran again — no completed or failed step, no
// counted attempt — and that every re-run was a retry of a failed attempt or of
// one in flight at a kill. The final run must equal an uncrashed run's.
//
// LOOM_CRASH_TRIALS sets the number of random-moment trials (default 200; the
// long mode in the README runs 10,000).
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include <SQLiteCpp/Database.h>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/crash_child.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace crash = loom::test::crash;
using crash::Kill, crash::LedgerLine, crash::Snapshot;

crash::Exit run_child(const std::string& mode, const loom::test::TempDir& dir, const Kill& kill,
                      unsigned threads = 4) {
    return crash::run_child({LOOM_CRASH_CHILD, mode, dir.file("runs.db"), dir.file("ledger")}, kill,
                            threads, dir.file("out"));
}

std::vector<LedgerLine> read_ledger(const loom::test::TempDir& dir) {
    return crash::read_ledger(dir.file("ledger"));
}

std::optional<loom::RunInfo> the_run(const loom::test::TempDir& dir) {
    auto runs = crash::stored_runs(dir.file("runs.db"));
    if (runs.empty()) return std::nullopt;
    REQUIRE(runs.size() == 1);
    return runs[0];
}

/// A clean run: how it ends, what its handlers did, and how many failpoints it
/// passes with 1 thread.
struct Reference {
    loom::RunInfo run;
    std::set<std::string> ran;   // steps whose handler ran
    std::size_t attempts = 0;    // handler calls (ledger lines)
    long failpoint_hits = 0;
};

const Reference& reference() {
    static const Reference ref = [] {
        loom::test::TempDir dir;
        auto exit = run_child("run", dir, Kill{0, "*:0", std::nullopt}, 1);
        REQUIRE_FALSE(exit.killed);
        REQUIRE(exit.code == 0);
        Reference r;
        r.run = *the_run(dir);
        const auto ledger = read_ledger(dir);
        r.ran = crash::keys_in(ledger);
        r.attempts = ledger.size();
        r.failpoint_hits = crash::failpoint_hits(exit.out);
        // The workflow exercises what it claims to: a retry, a skip, a tolerated
        // failure, a sleep; every other step completes, conditional or not.
        using loom::test::kCrashDoomed, loom::test::kCrashRetried, loom::test::kCrashSkipped,
            loom::test::kCrashSleep;
        REQUIRE(r.run.status == loom::RunStatus::completed);
        for (const auto& s : r.run.steps) {
            INFO("step " << s.step_id);
            const auto expected = s.step_id == kCrashSkipped  ? loom::StepStatus::skipped
                                  : s.step_id == kCrashDoomed ? loom::StepStatus::failed
                                                              : loom::StepStatus::completed;
            REQUIRE(s.status == expected);
        }
        REQUIRE(r.run.step(kCrashRetried)->attempts == 2);
        REQUIRE(r.run.step(kCrashSleep)->attempts == 1);
        REQUIRE(r.ran.count(kCrashSkipped) == 0);
        REQUIRE(r.ran.count(kCrashSleep) == 0);
        REQUIRE(r.attempts == r.ran.size() + 1);   // the retried step ran twice, the others once
        return r;
    }();
    return ref;
}

/// Whether the store held the outcome of `attempt` of `step` at the kill: its
/// result, or its failure with the retry it waits for.
bool settled(const Snapshot& snap, const std::string& step, int attempt) {
    auto it = snap.steps.find(step);
    if (it == snap.steps.end()) return false;
    switch (it->second.status) {
        case loom::StepStatus::completed:
        case loom::StepStatus::failed:
        case loom::StepStatus::skipped:
            return true;
        case loom::StepStatus::waiting:
            return it->second.attempts >= attempt;
        default:
            return false;
    }
}

/// Whether ledger line `i` was an attempt in flight at a kill that came before line `next`.
bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots) {
    return crash::in_flight_at_kill(ledger, i, next, snapshots, [](const Snapshot& snap, const LedgerLine& l) {
        return settled(snap, l.step, l.attempt);
    });
}

/// The kill of the process that wrote ledger line `i`, or nullptr if it was not killed.
const Snapshot* kill_of(std::size_t i, const std::vector<Snapshot>& snapshots) {
    for (const auto& snap : snapshots)
        if (snap.ledger_from <= i && i < snap.ledger_to) return &snap;
    return nullptr;
}

/// The promises, checked against the ledger (what ran) and the snapshots (what
/// was committed at each kill).
void check_ledger(const std::vector<LedgerLine>& ledger, const std::vector<Snapshot>& snapshots) {
    // What a kill found committed never runs again: no step that had completed,
    // failed for good or been skipped, and no attempt number the store counted
    // (a failed attempt waiting for its retry, or one started before the kill).
    for (const auto& snap : snapshots) {
        for (std::size_t i = snap.ledger_to; i < ledger.size(); ++i) {
            const auto& l = ledger[i];
            auto it = snap.steps.find(l.step);
            if (it == snap.steps.end()) continue;
            const auto& s = it->second;
            INFO("step " << l.step << " ran attempt " << l.attempt << " (ledger line " << i + 1
                         << ") after a kill that found it " << loom::to_string(s.status) << " with "
                         << s.attempts << " attempts");
            CHECK(s.status != loom::StepStatus::completed);
            CHECK(s.status != loom::StepStatus::failed);
            CHECK(s.status != loom::StepStatus::skipped);
            CHECK(l.attempt > s.attempts);
        }
    }
    // Each run of a step after its first has a reason: the previous attempt
    // failed in a way that is retried, or it was in flight at a kill. So the
    // step that always fails under "continue" runs once unless killed in flight.
    // Attempt numbers never go down, and go up unless the previous attempt was
    // in flight (its start may not have been counted).
    std::map<std::string, std::size_t> previous;
    for (std::size_t i = 0; i < ledger.size(); ++i) {
        const auto& l = ledger[i];
        auto it = previous.find(l.step);
        if (it != previous.end()) {
            const auto& p = ledger[it->second];
            const bool retried = loom::test::crash_attempt(p.step, p.attempt) ==
                                 loom::test::CrashAttempt::fails_retryable;
            const bool in_flight = in_flight_at_kill(ledger, it->second, i, snapshots);
            INFO("step " << l.step << " ran attempt " << l.attempt << " in process " << l.pid
                         << " (ledger line " << i + 1 << ") after attempt " << p.attempt << " in process "
                         << p.pid << " (line " << it->second + 1 << ")");
            CHECK((retried || in_flight));
            CHECK(l.attempt >= p.attempt);
            if (!in_flight) CHECK(l.attempt > p.attempt);
            if (l.pid == p.pid) {   // a retry: it started once the failure was committed
                CHECK(l.attempt == p.attempt + 1);
                if (const Snapshot* snap = kill_of(i, snapshots)) {
                    auto s = snap->steps.find(l.step);
                    REQUIRE(s != snap->steps.end());   // a run's handlers start after it is stored
                    INFO("at the kill the store had it " << loom::to_string(s->second.status) << " with "
                                                         << s->second.attempts << " attempts");
                    CHECK((settled(*snap, l.step, p.attempt) || s->second.attempts >= l.attempt));
                }
            }
        }
        previous[l.step] = i;
    }
    // No process ran the same attempt of a step twice.
    std::set<std::tuple<std::string, std::string, int>> seen;
    for (const auto& l : ledger) {
        INFO("process " << l.pid << " ran attempt " << l.attempt << " of " << l.step << " twice");
        CHECK(seen.emplace(l.pid, l.step, l.attempt).second);
    }
    // Every step whose handler runs in a clean run ran; no skipped step did.
    CHECK(crash::keys_in(ledger) == reference().ran);
}

/// Kills in one trial or many, and how many found a step waiting on a timer.
struct Kills {
    int total = 0;
    int retry_waiting = 0;   // the retried step had failed and waited for its retry
    int sleeping = 0;        // the sleep step waited on its timer

    Kills& operator+=(const Kills& o) {
        total += o.total;
        retry_waiting += o.retry_waiting;
        sleeping += o.sleeping;
        return *this;
    }
};

/// Runs one trial to completion: the first process dies as `first` says, the
/// recovering ones at random until one finishes.
Kills run_trial(const Kill& first, unsigned seed, unsigned threads = 4) {
    loom::test::TempDir dir;
    std::mt19937 rng(seed);
    Kills kills;
    std::vector<Snapshot> snapshots;

    for (int process = 0;; ++process) {
        REQUIRE(process < 30);   // recovery must make progress
        const bool started = the_run(dir).has_value();
        Kill kill = first;
        if (process > 0) kill = crash::recovery_kill(rng, kills.total, reference().attempts);   // now and then
        Snapshot snap;
        snap.ledger_from = read_ledger(dir).size();
        auto exit = run_child(started ? "recover" : "run", dir, kill, threads);
        if (!exit.killed) {
            INFO("child exit code " << exit.code);
            REQUIRE(exit.code == 0);
            if (the_run(dir).has_value()) break;
            continue;   // killed before the run existed, and recovered nothing
        }
        ++kills.total;
        if (auto run = the_run(dir))
            for (const auto& s : run->steps) snap.steps[s.step_id] = s;
        snap.ledger_to = read_ledger(dir).size();
        auto waits = [&snap](const char* step) {
            auto it = snap.steps.find(step);
            return it != snap.steps.end() && it->second.status == loom::StepStatus::waiting;
        };
        kills.retry_waiting += waits(loom::test::kCrashRetried);
        kills.sleeping += waits(loom::test::kCrashSleep);
        snapshots.push_back(std::move(snap));
    }

    // The run ends as an uncrashed one: every step's status, output and error.
    auto run = the_run(dir);
    REQUIRE(run);
    const auto& ref = reference().run;
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == ref.output);
    REQUIRE(run->steps.size() == ref.steps.size());
    for (std::size_t i = 0; i < ref.steps.size(); ++i) {
        INFO("step " << ref.steps[i].step_id);
        CHECK(run->steps[i].status == ref.steps[i].status);
        CHECK(run->steps[i].output == ref.steps[i].output);
        CHECK(run->steps[i].error == ref.steps[i].error);
    }

    check_ledger(read_ledger(dir), snapshots);
    SQLite::Database check(dir.file("runs.db"));
    CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
    CHECK(loom::SqliteStore(dir.file("runs.db")).unfinished_runs().empty());
    return kills;
}

}  // namespace

TEST_CASE("SIGKILL at every executor failpoint never re-runs a committed step", "[crash][sqlite]") {
    const long hits = reference().failpoint_hits;
    REQUIRE(hits > long(reference().attempts));   // claims, results, commits, wakes
    Kills kills;
    for (long n = 1; n <= hits; ++n) {
        INFO("first kill at failpoint hit " << n << " of " << hits);
        kills += run_trial(Kill{0, "*:" + std::to_string(n), std::nullopt}, unsigned(n), 1);
    }
    CHECK(kills.total >= hits);
    // Some of those kills came while a step waited on a timer.
    CHECK(kills.retry_waiting > 0);
    CHECK(kills.sleeping > 0);
    WARN("failpoint trials: " << hits << ", kills: " << kills.total << " (" << kills.retry_waiting
                              << " while a retry waited, " << kills.sleeping << " while asleep)");
}

TEST_CASE("SIGKILL as a retry or a sleep wakes never re-runs a committed step", "[crash][sqlite]") {
    const unsigned threads = GENERATE(1u, 4u);
    for (int n = 1; n <= 2; ++n) {   // the retry's wake and the sleep's, in either order
        INFO("first kill at wake " << n << " with " << threads << " threads");
        const auto kills = run_trial(Kill{0, "step.woken:" + std::to_string(n), std::nullopt},
                                     unsigned(2000 + n), threads);
        CHECK(kills.retry_waiting + kills.sleeping > 0);
    }
}

TEST_CASE("SIGKILL inside every handler never re-runs a committed step", "[crash][sqlite]") {
    const int attempts = int(reference().attempts);
    Kills kills;
    for (int n = 1; n <= attempts; ++n) {
        INFO("first kill in handler call " << n);
        kills += run_trial(Kill{n, "", std::nullopt}, unsigned(1000 + n));
    }
    CHECK(kills.total >= attempts);
    WARN("handler trials: " << attempts << ", kills: " << kills.total);
}

TEST_CASE("SIGKILL at random moments never re-runs a committed step", "[crash][sqlite]") {
    std::mt19937 rng(2026);
    const int trials = crash::trials_from_env(200);
    Kills kills;
    for (int trial = 0; trial < trials; ++trial) {
        const auto delay = std::chrono::microseconds(rng() % 60'000);
        INFO("trial " << trial << ", first kill after " << delay.count() << " us");
        kills += run_trial(Kill{0, "", delay}, static_cast<unsigned>(rng()));
    }
    CHECK(kills.total > 0);   // how many depends on timing: a quick child may finish first
    WARN("random-moment trials: " << trials << ", kills: " << kills.total << " (" << kills.retry_waiting
                                  << " while a retry waited, " << kills.sleeping << " while asleep)");
}
