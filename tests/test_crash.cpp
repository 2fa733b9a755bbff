// Crash test: a child process runs a parallel workflow on SQLite and is
// SIGKILLed, at every handler position and at random moments, again and again
// while it recovers. After each kill the test reads what was committed; the
// ledger then proves that no committed step ever ran again, and the final
// output must equal an uncrashed run's.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/temp_dir.hpp"

namespace {

struct Exit {
    bool killed = false;
    int code = 0;
};

/// Runs the child; kills it after `kill_after` if given, unless it exits first.
Exit run_child(const std::string& mode, const std::string& db, const std::string& ledger,
               int crash_after, std::optional<std::chrono::microseconds> kill_after) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (crash_after > 0) ::setenv("LOOM_CRASH_AFTER", std::to_string(crash_after).c_str(), 1);
        else ::unsetenv("LOOM_CRASH_AFTER");
        ::execl(LOOM_CRASH_CHILD, LOOM_CRASH_CHILD, mode.c_str(), db.c_str(), ledger.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    REQUIRE(pid > 0);
    if (kill_after) {
        std::this_thread::sleep_for(*kill_after);
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) return {true, WTERMSIG(status)};
    return {false, WEXITSTATUS(status)};
}

std::vector<std::string> ledger_steps(const std::string& path, std::size_t from,
                                      std::multimap<std::string, std::string>* by_pid = nullptr) {
    std::ifstream in(path);
    std::vector<std::string> steps;
    std::string step, pid;
    for (std::size_t i = 0; in >> step >> pid; ++i) {
        if (i < from) continue;
        steps.push_back(step);
        if (by_pid) by_pid->emplace(pid, step);
    }
    return steps;
}

std::optional<loom::RunInfo> the_run(const std::string& db) {
    loom::SqliteStore store(db);
    auto runs = store.list_runs();
    if (runs.empty()) return std::nullopt;
    REQUIRE(runs.size() == 1);
    return store.load_run(runs[0].id);
}

loom::Json reference_output() {
    loom::test::TempDir dir;
    auto exit = run_child("run", dir.file("ref.db"), dir.file("ledger"), 0, std::nullopt);
    REQUIRE_FALSE(exit.killed);
    REQUIRE(exit.code == 0);
    return the_run(dir.file("ref.db"))->output;
}

struct Trial {
    int first_crash_after = 0;                              // kill at the N-th handler
    std::optional<std::chrono::microseconds> first_kill;    // or after this long
    unsigned seed = 0;                                      // later kills, during recovery
};

/// Runs one trial to completion; returns the number of kills.
int run_trial(const Trial& t, const loom::Json& expected) {
    loom::test::TempDir dir;
    const auto db = dir.file("runs.db"), ledger = dir.file("ledger");
    std::mt19937 rng(t.seed);
    int kills = 0;
    std::vector<std::pair<std::set<std::string>, std::size_t>> snapshots;   // committed, ledger size

    for (int process = 0;; ++process) {
        REQUIRE(process < 30);   // recovery must make progress
        const bool started = the_run(db).has_value();
        int crash_after = 0;
        std::optional<std::chrono::microseconds> kill_after;
        if (process == 0) {
            crash_after = t.first_crash_after;
            kill_after = t.first_kill;
        } else if (kills < 4 && rng() % 2 == 0) {
            crash_after = 1 + static_cast<int>(rng() % loom::test::crash_step_count());   // during recovery
        }
        auto exit = run_child(started ? "recover" : "run", db, ledger, crash_after, kill_after);
        if (!exit.killed) {
            INFO("child exit code " << exit.code);
            REQUIRE(exit.code == 0);
            if (the_run(db).has_value()) break;
            continue;   // killed before the run existed, and recovered nothing
        }
        ++kills;
        std::set<std::string> committed;
        if (auto run = the_run(db)) {
            for (const auto& s : run->steps)
                if (s.status == loom::StepStatus::completed) committed.insert(s.step_id);
        }
        snapshots.emplace_back(committed, ledger_steps(ledger, 0).size());
    }

    auto run = the_run(db);
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == expected);

    // No step committed at a kill ran again afterwards.
    for (const auto& [committed, offset] : snapshots) {
        for (const auto& step : ledger_steps(ledger, offset)) {
            INFO("step " << step << " ran again after its completion was committed");
            CHECK(committed.count(step) == 0);
        }
    }
    // Every step ran, and no process ran a step twice.
    std::multimap<std::string, std::string> by_pid;
    auto all = ledger_steps(ledger, 0, &by_pid);
    CHECK(std::set<std::string>(all.begin(), all.end()).size() ==
          static_cast<std::size_t>(loom::test::crash_step_count()));
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& [pid, step] : by_pid) {
        INFO("process " << pid << " ran " << step << " twice");
        CHECK(seen.emplace(pid, step).second);
    }
    SQLite::Database check(db);
    CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
    CHECK(loom::SqliteStore(db).unfinished_runs().empty());
    return kills;
}

}  // namespace

TEST_CASE("SIGKILL at every handler position never re-runs a committed step", "[crash][sqlite]") {
    const auto expected = reference_output();
    int kills = 0;
    for (int n = 1; n <= loom::test::crash_step_count(); ++n) {
        INFO("first kill at handler " << n);
        kills += run_trial({n, std::nullopt, static_cast<unsigned>(n)}, expected);
    }
    CHECK(kills >= loom::test::crash_step_count());
}

TEST_CASE("SIGKILL at random moments never re-runs a committed step", "[crash][sqlite]") {
    const auto expected = reference_output();
    std::mt19937 rng(2026);
    int kills = 0;
    for (int trial = 0; trial < 100; ++trial) {
        const auto delay = std::chrono::microseconds(rng() % 60'000);
        INFO("trial " << trial << ", first kill after " << delay.count() << " us");
        kills += run_trial({0, delay, static_cast<unsigned>(rng())}, expected);
    }
    CHECK(kills > 0);
}
