// What SqliteStore promises beyond the Store contract: durability across reopen,
// its connection settings, schema migrations, and several writers on one file.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <loom/error.hpp>
#include <loom/events.hpp>
#include <loom/sqlite_store.hpp>

#include "store/sqlite_schema.hpp"
#include "support/temp_dir.hpp"

namespace {

loom::TimePoint at(std::int64_t ms) { return loom::TimePoint(std::chrono::milliseconds(ms)); }

loom::WorkflowRecord workflow() {
    loom::WorkflowRecord record;
    record.name = "etl";
    record.version = 1;
    record.hash = "h1";
    record.definition = {{"name", "etl"}, {"version", 1}, {"steps", {{{"id", "a"}}}}};
    record.created_at = at(1'700'000'000'000);
    return record;
}

loom::RunInfo new_run(const std::string& id) {
    loom::RunInfo run;
    run.id = id;
    run.workflow_name = "etl";
    run.workflow_version = 1;
    run.workflow_hash = "h1";
    run.input = {{"n", 1}};
    run.created_at = at(1'700'000'000'000);
    run.updated_at = run.created_at;
    run.steps.resize(1);
    run.steps[0].step_id = "a";
    return run;
}

// One short write, as the executor makes them: a new run and an event.
void write_run(loom::Store& store, const std::string& id) {
    loom::Batch batch;
    batch.new_runs.push_back(new_run(id));
    loom::RunEvent event;
    event.run_id = id;
    event.kind = loom::event::run_started;
    batch.events.push_back(event);
    store.commit(batch);
}

loom::StepWrite step_write(const std::string& run_id, const std::string& step_id,
                           loom::StepStatus status, int attempts) {
    loom::StepWrite write;
    write.run_id = run_id;
    write.step_id = step_id;
    write.status = status;
    write.attempts = attempts;
    return write;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<int> applied_versions(const std::string& path) {
    SQLite::Database db(path);
    SQLite::Statement query(db, "SELECT version FROM schema_migrations ORDER BY version");
    std::vector<int> versions;
    while (query.executeStep()) versions.push_back(query.getColumn(0).getInt());
    return versions;
}

// Every row of a query, each as its columns' SQL literals ("'a'|12|NULL"), so
// that a value, its type and NULL all show.
std::vector<std::string> rows(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement query(db, sql);
    std::vector<std::string> out;
    while (query.executeStep()) {
        std::string row;
        for (int i = 0; i < query.getColumnCount(); ++i) {
            row += (i > 0 ? "|" : "") + query.getColumn(i).getString();
        }
        out.push_back(row);
    }
    return out;
}

std::vector<int> every_version() {
    std::vector<int> versions;
    for (int v = 1; v <= loom::SqliteStore::latest_schema_version(); ++v) versions.push_back(v);
    return versions;
}

}  // namespace

TEST_CASE("data survives closing and reopening the file", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    {
        loom::SqliteStore store(path);
        store.save_workflow(workflow());
        write_run(store, "r1");
        loom::Batch batch;
        loom::StepWrite step = step_write("r1", "a", loom::StepStatus::completed, 1);
        step.output = {{"rows", 3}};
        batch.steps.push_back(step);
        store.commit(batch);
    }
    loom::SqliteStore store(path);
    REQUIRE(store.list_workflows().size() == 1);
    CHECK(store.load_workflow("etl")->definition == workflow().definition);
    auto run = store.load_run("r1");
    REQUIRE(run);
    CHECK(run->input == new_run("r1").input);
    CHECK(run->step("a")->status == loom::StepStatus::completed);
    CHECK(run->step("a")->output == loom::Json{{"rows", 3}});
    CHECK(store.load_events("r1").size() == 1);
    CHECK(store.unfinished_runs() == std::vector<loom::RunId>{"r1"});
}

TEST_CASE("connections use WAL, the requested synchronous level and the busy timeout", "[store][sqlite]") {
    loom::test::TempDir dir;
    SECTION("defaults: FULL") {
        loom::SqliteStore store(dir.file("runs.db"));
        const auto settings = store.settings();
        CHECK(settings.journal_mode == "wal");
        CHECK(settings.synchronous == 2);
        CHECK(settings.foreign_keys);
        CHECK(settings.busy_timeout == std::chrono::milliseconds(5000));
    }
    SECTION("NORMAL when asked") {
        loom::SqliteOptions options;
        options.synchronous = loom::SqliteOptions::Synchronous::normal;
        options.busy_timeout = std::chrono::milliseconds(1234);
        loom::SqliteStore store(dir.file("runs.db"), options);
        CHECK(store.settings().synchronous == 1);
        CHECK(store.settings().busy_timeout == std::chrono::milliseconds(1234));
    }
    // WAL is a property of the file: every later connection sees it.
    SQLite::Database db(dir.file("runs.db"));
    CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
}

TEST_CASE("opening a new file applies every migration", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    { loom::SqliteStore store(path); }
    CHECK(loom::SqliteStore::latest_schema_version() == 11);
    CHECK(applied_versions(path) == every_version());
    SQLite::Database db(path);
    CHECK(db.execAndGet("SELECT count(*) FROM schema_migrations WHERE description = '' "
                        "OR applied_at < 1600000000000").getInt() == 0);
    for (const char* table : {"workflow_definitions", "workflow_runs", "step_runs", "run_events", "step_items",
                              "run_logs"}) {
        CHECK(db.tableExists(table));
    }
    // Reopening applies nothing twice.
    { loom::SqliteStore store(path); }
    CHECK(applied_versions(path) == every_version());
}

TEST_CASE("opening a version 1 file upgrades it and keeps its data", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("v1.db");
    {
        // The file as Loom with schema version 1 left it.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 1);
        db.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 5)");
        db.exec("INSERT INTO workflow_runs VALUES ('old', 'etl', 1, 'h1', 'running', 0, "
                "'{\"n\":7}', NULL, NULL, 10, 11, NULL)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'a', 0, 'completed', 1, '42', NULL, 12, 13)");
        db.exec("INSERT INTO run_events (run_id, kind, at) VALUES ('old', 'run.started', 10)");
    }
    REQUIRE(applied_versions(path) == std::vector<int>{1});

    loom::SqliteStore store(path);
    CHECK(applied_versions(path) == every_version());
    auto run = store.load_run("old");
    REQUIRE(run);
    CHECK(run->input == loom::Json{{"n", 7}});
    CHECK(run->created_at == at(10));
    CHECK(run->step("a")->output == 42);
    CHECK(run->step("a")->finished_at == at(13));
    CHECK(run->lease_until == at(0));   // orphaned: recover() takes it
    CHECK(store.load_events("old").size() == 1);
    CHECK(store.load_workflow("etl")->created_at == at(5));
    // The upgraded file takes new writes.
    write_run(store, "new");
    CHECK(store.list_runs().size() == 2);
}

TEST_CASE("opening a version 2 file upgrades it, and duplicate starts it holds are kept", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("v2.db");
    {
        // Schema 2 did not refuse a second start of one attempt.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 2);
        db.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 5)");
        db.exec("INSERT INTO workflow_runs VALUES ('old', 'etl', 1, 'h1', 'running', 0, "
                "'{}', NULL, NULL, 10, 11, NULL)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'a', 0, 'running', 1, NULL, NULL, 12, NULL)");
        for (int i = 0; i < 3; ++i) {
            db.exec("INSERT INTO run_events (run_id, step_id, kind, attempt, at) "
                    "VALUES ('old', 'a', 'step.started', 1, 12)");
        }
    }
    REQUIRE(applied_versions(path) == std::vector<int>{1, 2});

    loom::SqliteStore store(path);
    CHECK(applied_versions(path) == every_version());
    std::vector<std::string> kinds;
    for (const auto& event : store.load_events("old")) kinds.push_back(event.kind);
    CHECK(kinds == std::vector<std::string>{loom::event::step_started, "step.started.duplicate",
                                            "step.started.duplicate"});
    // From now on the store refuses a second start of that attempt, and takes the next.
    loom::RunEvent again;
    again.run_id = "old";
    again.step_id = "a";
    again.kind = loom::event::step_started;
    again.attempt = 1;
    loom::Batch batch;
    batch.events.push_back(again);
    CHECK_THROWS_AS(store.commit(batch), loom::Conflict);
    batch.events[0].attempt = 2;
    store.commit(batch);
    CHECK(store.load_events("old").size() == 4);
}

TEST_CASE("opening a version 3 file rebuilds step_runs with every row and value", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("v3.db");
    // Literal columns, so that the comparison cannot miss a value the store skips.
    const std::string steps_v3 =
        "SELECT quote(run_id), quote(step_id), quote(position), quote(status), quote(attempts), "
        "quote(output), quote(error), quote(started_at), quote(finished_at) FROM step_runs "
        "ORDER BY run_id, step_id";
    const std::string runs_v3 =
        "SELECT rowid, quote(id), quote(workflow_name), quote(workflow_version), "
        "quote(workflow_hash), quote(status), quote(cancel_requested), quote(input), "
        "quote(output), quote(error), quote(created_at), quote(updated_at), quote(finished_at) "
        "FROM workflow_runs ORDER BY rowid";
    const std::string events = "SELECT quote(seq), quote(run_id), quote(step_id), quote(kind), "
                               "quote(attempt), quote(detail), quote(at) FROM run_events ORDER BY seq";
    std::vector<std::string> steps_before, runs_before, events_before;
    {
        // The file as Loom with schema version 3 left it, plus an index of the host's.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 3);
        db.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 5)");
        db.exec("INSERT INTO workflow_runs VALUES ('old', 'etl', 1, 'h1', 'running', 1, "
                "'{\"n\":7}', NULL, NULL, 10, 11, NULL)");
        db.exec("INSERT INTO workflow_runs VALUES ('done', 'etl', 1, 'h1', 'failed', 0, "
                "NULL, '{\"c\":null}', 'step a failed: boom', 20, 22, 23)");
        // Inserted out of position order; load_run must still give c after b.
        db.exec("INSERT INTO step_runs VALUES ('old', 'c', 2, 'pending', 0, NULL, NULL, NULL, NULL)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'a', 0, 'completed', 1, '42', NULL, 12, 13)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'b', 1, 'running', 2, NULL, 'first: e', 14, "
                "NULL)");
        db.exec("INSERT INTO step_runs VALUES ('done', 'a', 0, 'failed', 3, '[1,\"x\"]', 'boom', "
                "20, 21)");
        db.exec("INSERT INTO run_events (run_id, kind, at) VALUES ('old', 'run.started', 10)");
        db.exec("INSERT INTO run_events (run_id, step_id, kind, attempt, detail, at) "
                "VALUES ('done', 'a', 'step.failed', 3, 'boom', 21)");
        db.exec("CREATE INDEX host_steps_by_status ON step_runs (status, run_id)");
        steps_before = rows(db, steps_v3);
        runs_before = rows(db, runs_v3);
        events_before = rows(db, events);
    }
    REQUIRE(applied_versions(path) == std::vector<int>{1, 2, 3});
    REQUIRE(steps_before.size() == 4);

    loom::SqliteStore store(path);
    CHECK(applied_versions(path) == every_version());
    CHECK(store.settings().foreign_keys);   // on again
    {
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(rows(db, steps_v3) == steps_before);
        CHECK(rows(db, runs_v3) == runs_before);
        CHECK(rows(db, events) == events_before);
        CHECK(rows(db, "SELECT count(*) FROM step_runs WHERE wake_at IS NOT NULL") ==
              std::vector<std::string>{"0"});
        CHECK(rows(db, "SELECT count(*) FROM workflow_runs WHERE idempotency_key IS NOT NULL") ==
              std::vector<std::string>{"0"});
        // Still WITHOUT ROWID, keyed by (run, step), checked, and indexed as before.
        CHECK_THROWS_AS(db.exec("SELECT rowid FROM step_runs"), SQLite::Exception);
        CHECK_THROWS_AS(db.exec("INSERT INTO step_runs (run_id, step_id, position, status) "
                                "VALUES ('old', 'a', 9, 'pending')"),
                        SQLite::Exception);
        CHECK_THROWS_AS(db.exec("INSERT INTO step_runs (run_id, step_id, position, status) "
                                "VALUES ('old', 'z', 9, 'bogus')"),
                        SQLite::Exception);
        CHECK(rows(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                       "ORDER BY name") ==
              std::vector<std::string>{"host_steps_by_status", "run_events_by_run",
                                       "run_events_step_started", "run_logs_by_run", "workflow_runs_by_created",
                                       "workflow_runs_by_finished", "workflow_runs_by_idempotency_key",
                                       "workflow_runs_by_status", "workflow_runs_by_workflow",
                                           "workflow_runs_controlled"});
        CHECK_FALSE(db.tableExists("step_runs_v4"));
        CHECK(rows(db, "PRAGMA foreign_key_check").empty());
    }

    auto old = store.load_run("old");
    REQUIRE(old);
    REQUIRE(old->steps.size() == 3);
    CHECK(old->steps[1].step_id == "b");
    CHECK(old->step("b")->attempts == 2);
    CHECK(old->step("b")->error == "first: e");
    CHECK(old->step("b")->started_at == at(14));
    CHECK_FALSE(old->step("b")->wake_at);
    CHECK(old->idempotency_key.empty());
    CHECK(store.load_run("done")->step("a")->output == loom::Json::parse("[1,\"x\"]"));

    // The rebuilt table takes the new statuses and wake_at.
    loom::Batch batch;
    loom::StepWrite wait = step_write("old", "b", loom::StepStatus::waiting, 2);
    wait.wake_at = at(99);
    batch.steps = {wait, step_write("old", "c", loom::StepStatus::skipped, 0)};
    store.commit(batch);
    old = store.load_run("old");
    CHECK(old->step("b")->status == loom::StepStatus::waiting);
    CHECK(old->step("b")->wake_at == at(99));
    CHECK(old->step("c")->status == loom::StepStatus::skipped);
}

TEST_CASE("opening a version 5 file rebuilds step_runs for the cancelled state, keeping every row",
          "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("v5.db");
    const std::string steps = "SELECT quote(run_id), quote(step_id), quote(position), quote(status), "
                              "quote(attempts), quote(output), quote(error), quote(started_at), "
                              "quote(finished_at), quote(wake_at) FROM step_runs ORDER BY run_id, step_id";
    // Version 5's columns (7 adds attempt_base, 0 for rows from before).
    const std::string items = "SELECT run_id, step_id, idx, status, attempts, output, error, started_at, "
                              "finished_at, wake_at FROM step_items ORDER BY run_id, step_id, idx";
    std::vector<std::string> steps_before, items_before;
    {
        // The file as Loom with schema version 5 left it, plus an index of the host's.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 5);
        db.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 5)");
        db.exec("INSERT INTO workflow_runs (id, workflow_name, workflow_version, workflow_hash, status, "
                "created_at, updated_at) VALUES ('old', 'etl', 1, 'h1', 'failed', 10, 11)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'a', 0, 'failed', 2, NULL, 'boom', 12, 13, NULL)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'b', 1, 'waiting', 1, NULL, 'e', 12, 13, 99)");
        db.exec("INSERT INTO step_runs VALUES ('old', 'c', 2, 'pending', 0, NULL, NULL, NULL, NULL, NULL)");
        db.exec("INSERT INTO step_items VALUES ('old', 'a', 0, 'completed', 1, '7', NULL, 12, 13, NULL)");
        db.exec("CREATE INDEX host_steps_by_status ON step_runs (status, run_id)");
        // Schema 5 refuses the new state.
        CHECK_THROWS_AS(db.exec("UPDATE step_runs SET status = 'cancelled' WHERE step_id = 'c'"),
                        SQLite::Exception);
        steps_before = rows(db, steps);
        items_before = rows(db, items);
    }
    REQUIRE(applied_versions(path) == std::vector<int>{1, 2, 3, 4, 5});

    loom::SqliteStore store(path);
    CHECK(applied_versions(path) == every_version());
    CHECK(store.settings().foreign_keys);
    {
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        CHECK(rows(db, steps) == steps_before);
        CHECK(rows(db, items) == items_before);
        CHECK(rows(db, "SELECT name FROM sqlite_master WHERE name = 'host_steps_by_status'").size() == 1);
        CHECK_FALSE(db.tableExists("step_runs_v6"));
        CHECK(rows(db, "PRAGMA foreign_key_check").empty());
        CHECK_THROWS_AS(db.exec("UPDATE step_runs SET status = 'bogus' WHERE step_id = 'c'"), SQLite::Exception);
    }
    auto old = store.load_run("old");
    REQUIRE(old);
    CHECK(old->step("b")->wake_at == at(99));
    CHECK(old->step("a")->items.at(0).output == 7);

    // The rebuilt table takes the new state.
    loom::Batch batch;
    batch.steps = {step_write("old", "b", loom::StepStatus::cancelled, 1),
                   step_write("old", "c", loom::StepStatus::cancelled, 0)};
    store.commit(batch);
    old = store.load_run("old");
    CHECK(old->step("b")->status == loom::StepStatus::cancelled);
    CHECK(old->step("c")->status == loom::StepStatus::cancelled);
}

TEST_CASE("opening a version 9 file marks unfinished runs from before ownership orphaned, not enqueued",
          "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("v9.db");
    {
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 9);
        db.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 5)");
        auto run = [&](const char* id, const char* status, const char* owner, const char* lease, const char* kind) {
            db.exec(fmt::format("INSERT INTO workflow_runs (id, workflow_name, workflow_version, workflow_hash, "
                                "status, created_at, updated_at, owner, lease_until) "
                                "VALUES ('{}', 'etl', 1, 'h1', '{}', 10, 11, {}, {})",
                                id, status, owner, lease));
            db.exec(fmt::format("INSERT INTO run_events (run_id, kind, at) VALUES ('{}', '{}', 10)", id, kind));
        };
        run("old", "running", "NULL", "NULL", "run.started");        // from before schema 8
        run("queued", "running", "NULL", "NULL", "run.enqueued");    // waits for a claim
        run("held", "running", "'worker'", "99", "run.started");
        run("done", "completed", "NULL", "NULL", "run.started");
    }
    loom::SqliteStore store(path);
    CHECK(store.load_run("old")->lease_until == at(0));
    CHECK_FALSE(store.load_run("queued")->lease_until);
    CHECK(store.load_run("held")->lease_until == at(99));
    CHECK_FALSE(store.load_run("done")->lease_until);
    // Recovery takes the orphan and leaves the enqueued run to the claims.
    loom::ClaimRequest recovery;
    recovery.owner = "me";
    recovery.now = at(50);
    recovery.until = at(5000);
    recovery.enqueued = false;
    CHECK(store.claim_runs(recovery) == std::vector<loom::RunId>{"old"});
    recovery.enqueued = true;
    CHECK(store.claim_runs(recovery) == std::vector<loom::RunId>{"queued"});
}

TEST_CASE("a version 3 file with a step of no run is refused, not migrated", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("orphan.db");
    {
        // Only a client without foreign key enforcement (SQLite's default) writes this.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path, 3);
        db.exec("INSERT INTO step_runs VALUES ('ghost', 'a', 0, 'pending', 0, NULL, NULL, NULL, "
                "NULL)");
    }
    try {
        loom::SqliteStore store(path);
        FAIL("migrated a file whose step has no run");
    } catch (const loom::StoreError& e) {
        CHECK(e.id() == loom::error_id::store_migration_failed);
        CHECK_THAT(e.what(), Catch::Contains("migration 4") && Catch::Contains("step_runs") &&
                                 Catch::Contains("workflow_runs"));
    }
    CHECK(applied_versions(path) == std::vector<int>{1, 2, 3});
    SQLite::Database db(path);
    CHECK(rows(db, "SELECT run_id, step_id FROM step_runs") == std::vector<std::string>{"ghost|a"});
    CHECK_FALSE(db.tableExists("step_runs_v4"));
}

TEST_CASE("a file with a newer schema is refused and left unchanged", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("future.db");
    const int newer = loom::SqliteStore::latest_schema_version() + 1;
    {
        // Not in WAL mode: opening must not even switch the journal mode.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        loom::detail::migrate(db, path);
        db.exec("INSERT INTO schema_migrations VALUES (" + std::to_string(newer) +
                ", 'from the future', 1)");
    }
    const std::string before = file_bytes(path);

    auto open = [&] { loom::SqliteStore store(path); };
    REQUIRE_THROWS_AS(open(), loom::StoreError);
    REQUIRE_THROWS_WITH(open(), "[loom.store.schema_too_new] " + path + ": schema version " +
                                    std::to_string(newer) +
                                    " is newer than this library supports (" +
                                    std::to_string(newer - 1) + ")");
    CHECK(file_bytes(path) == before);
}

TEST_CASE("a file that is not a database is refused with StoreError", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("junk.db");
    std::ofstream(path) << std::string(4096, 'x');
    try {
        loom::SqliteStore store(path);
        FAIL("opened a file that is not a database");
    } catch (const loom::StoreError& e) {
        CHECK(e.id() == loom::error_id::store_io);
        CHECK_THAT(e.what(), Catch::Contains(path));
    }
}

TEST_CASE("a write that outwaits the busy timeout is a StoreError", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    loom::SqliteOptions options;
    options.busy_timeout = std::chrono::milliseconds(50);
    loom::SqliteStore store(path, options);
    store.save_workflow(workflow());

    SQLite::Database other(path, SQLite::OPEN_READWRITE);
    SQLite::Transaction lock(other, SQLite::TransactionBehavior::IMMEDIATE);
    try {
        write_run(store, "r1");
        FAIL("the commit did not wait for the lock");
    } catch (const loom::StoreError& e) {
        CHECK(e.id() == loom::error_id::store_busy);
    }
    lock.commit();
    write_run(store, "r1");   // and works once the lock is gone
    CHECK(store.load_run("r1"));
}

TEST_CASE("two stores on one file both write", "[store][sqlite]") {
    loom::test::TempDir dir;
    const std::string path = dir.file("runs.db");
    // Two stores stand for two processes: separate connections, separate mutexes.
    loom::SqliteOptions options;
    options.synchronous = loom::SqliteOptions::Synchronous::normal;
    loom::SqliteStore first(path, options);
    loom::SqliteStore second(path, options);
    first.save_workflow(workflow());
    REQUIRE_FALSE(second.save_workflow(workflow()));

    constexpr int kRuns = 200;
    std::atomic<int> failures{0};
    auto writer = [&](loom::SqliteStore& store, const std::string& prefix) {
        for (int i = 0; i < kRuns; ++i) {
            try {
                write_run(store, prefix + std::to_string(i));
            } catch (const std::exception&) {
                ++failures;
            }
        }
    };
    std::thread a(writer, std::ref(first), "a");
    std::thread b(writer, std::ref(second), "b");
    a.join();
    b.join();

    CHECK(failures == 0);
    loom::RunFilter all;
    all.limit = 1000;
    CHECK(first.list_runs(all).size() == 2 * kRuns);
    CHECK(second.list_runs(all).size() == 2 * kRuns);
}

TEST_CASE("concurrent commits on one store all land", "[store][sqlite]") {
    const int threads = GENERATE(1, 2, 4);
    loom::test::TempDir dir;
    loom::SqliteOptions options;
    options.synchronous = loom::SqliteOptions::Synchronous::normal;
    loom::SqliteStore store(dir.file("runs.db"), options);
    store.save_workflow(workflow());

    constexpr int kPerThread = 100;
    std::atomic<int> failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                try {
                    write_run(store, std::to_string(t) + "-" + std::to_string(i));
                    store.load_run(std::to_string(t) + "-" + std::to_string(i / 2));
                } catch (const std::exception&) {
                    ++failures;
                }
            }
        });
    }
    for (auto& thread : pool) thread.join();

    CHECK(failures == 0);
    loom::RunFilter all;
    all.limit = 1000;
    CHECK(store.list_runs(all).size() == static_cast<std::size_t>(threads * kPerThread));
    std::vector<std::int64_t> seqs;
    for (const auto& run : store.list_runs(all)) {
        seqs.push_back(store.load_events(run.id).at(0).seq);
    }
    std::sort(seqs.begin(), seqs.end());
    CHECK(std::adjacent_find(seqs.begin(), seqs.end()) == seqs.end());
}
