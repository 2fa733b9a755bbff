// PostgresStore beyond the conformance suite (tests/store/store_test.cpp): its
// migrations, and riding out what a network database does: connections cut,
// a server crash-restarted between and during commits, a connection lost while
// COMMIT is on its way, a server down past the retry budget.
#include <catch2/catch.hpp>

#ifndef LOOM_TEST_POSTGRES

TEST_CASE("PostgreSQL tests are skipped: Loom is built without LOOM_WITH_POSTGRES", "[store][postgres]") {
    WARN("skipped: configure with -DLOOM_WITH_POSTGRES=ON (needs libpqxx-dev) to test PostgresStore");
    SUCCEED();
}

#else

#include <atomic>
#include <memory>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <loom/error.hpp>
#include <loom/error_ids.hpp>
#include <loom/events.hpp>
#include <loom/executor.hpp>
#include <loom/handler.hpp>
#include <loom/workflow.hpp>
#include <loom/postgres_store.hpp>

#include "store/postgres_link.hpp"
#include "store/postgres_schema.hpp"
#include "support/pg_schema.hpp"

namespace {

using namespace std::chrono_literals;

loom::TimePoint at(std::int64_t ms) { return loom::TimePoint(std::chrono::milliseconds(ms)); }

void save_etl(loom::Store& store) {
    loom::WorkflowRecord record;
    record.name = "etl";
    record.version = 1;
    record.hash = "h1";
    record.definition = {{"name", "etl"}, {"version", 1}, {"steps", {{{"id", "a"}}}}};
    store.save_workflow(record);
}

loom::RunInfo new_run(const std::string& id) {
    loom::RunInfo run;
    run.id = id;
    run.workflow_name = "etl";
    run.workflow_version = 1;
    run.workflow_hash = "h1";
    run.created_at = at(1'700'000'000'000);
    run.updated_at = run.created_at;
    loom::StepInfo step;
    step.step_id = "a";
    run.steps.push_back(step);
    return run;
}

// A batch that appends event number `n` to run r: the transition whose loss
// or duplication the tests look for.
loom::Batch numbered_event(int n) {
    loom::Batch batch;
    batch.events.push_back(loom::RunEvent{0, "r", "", "test.numbered", 0, std::to_string(n), at(n)});
    return batch;
}

// Every numbered event is in r's history exactly once, in commit order.
void require_each_once(loom::Store& store, int count) {
    const auto events = store.load_events("r");
    REQUIRE(events.size() == static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        CHECK(events[i].detail == std::to_string(i));
        if (i > 0) CHECK(events[i].seq > events[i - 1].seq);
    }
}

// Commits numbered events from another thread until stopped; every commit must
// succeed.
class Committer {
public:
    explicit Committer(loom::Store& store)
        : thread_([this, &store] {
              try {
                  while (!stop_) {
                      store.commit(numbered_event(count_));
                      ++count_;
                  }
              } catch (const std::exception& e) {
                  error_ = e.what();
              }
          }) {}
    ~Committer() {
        if (thread_.joinable()) finish();
    }
    // Lets it commit at least `n` more events.
    void wait_for(int n) {
        const int target = count_ + n;
        while (count_ < target && error_.empty()) std::this_thread::sleep_for(1ms);
    }
    int finish() {
        stop_ = true;
        thread_.join();
        REQUIRE(error_ == "");   // shows the error
        return count_;
    }

private:
    std::atomic<bool> stop_{false};
    std::atomic<int> count_{0};
    std::string error_;
    std::thread thread_;
};

loom::PostgresOptions budget(std::chrono::milliseconds ms) {
    loom::PostgresOptions options;
    options.retry_budget = ms;
    return options;
}

// A store in a fresh schema, holding run "r" of etl v1 for numbered events.
struct WithRun {
    explicit WithRun(std::chrono::milliseconds retry_budget) : store(schema.url(), budget(retry_budget)) {
        save_etl(store);
        loom::Batch create;
        create.new_runs.push_back(new_run("r"));
        store.commit(create);
    }
    loom::test::PgSchema schema;
    loom::PostgresStore store;
};

// A transaction whose COMMIT takes effect but whose reply is "lost": libpqxx's
// in-doubt error after a successful commit, as when the connection breaks just
// after the server committed.
class LosesCommitReply : public pqxx::work {
public:
    // namedclass is a virtual base of libpqxx's transactions: the most derived
    // class constructs it.
    explicit LosesCommitReply(pqxx::connection_base& c)
        : pqxx::internal::namedclass("LosesCommitReply"), pqxx::work(c) {}
    void commit() {
        pqxx::work::commit();
        throw pqxx::in_doubt_error("simulated: the connection broke before COMMIT's reply arrived");
    }
};

// Terminates every client connection of the test database but the caller's.
int terminate_others() {
    pqxx::connection admin(loom::test::pg_url());
    pqxx::nontransaction tx(admin);
    const auto r = tx.exec(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
    return r[0][0].as<int>();
}

}  // namespace

TEST_CASE("migrations are recorded in schema_migrations and re-opening is a no-op", "[store][postgres]") {
    loom::test::PgSchema schema;
    pqxx::connection admin(schema.url());
    auto migrations = [&] {
        pqxx::nontransaction tx(admin);
        std::vector<std::pair<int, std::string>> out;
        for (const auto& row : tx.exec("SELECT version, description, applied_at FROM schema_migrations ORDER BY version"))
            out.emplace_back(row[0].as<int>(), row[1].as<std::string>() + "@" + row[2].as<std::string>());
        return out;
    };

    SECTION("from an empty schema, and again") {
        { loom::PostgresStore store(schema.url()); }
        const auto first = migrations();
        REQUIRE(first.size() == static_cast<std::size_t>(loom::PostgresStore::latest_schema_version()));
        for (std::size_t i = 0; i < first.size(); ++i) CHECK(first[i].first == static_cast<int>(i) + 1);
        loom::PostgresStore again(schema.url());
        CHECK(migrations() == first);   // nothing applied twice, applied_at unchanged
        save_etl(again);
        again.commit([] {
            loom::Batch batch;
            batch.new_runs.push_back(new_run("r"));
            return batch;
        }());
        CHECK(again.load_run("r"));
    }
    SECTION("from an older version, keeping its rows") {
        {
            pqxx::work tx(admin);
            REQUIRE(loom::detail::pg::migrate_step(tx, "test", 1));
            REQUIRE_FALSE(loom::detail::pg::migrate_step(tx, "test", 1));
            tx.exec("INSERT INTO workflow_definitions VALUES ('etl', 1, 'h1', '{}', 0)");
            tx.commit();
        }
        REQUIRE(migrations().size() == 1);
        loom::PostgresStore store(schema.url());
        CHECK(migrations().size() == static_cast<std::size_t>(loom::PostgresStore::latest_schema_version()));
        CHECK(store.load_workflow("etl", 1));
    }
    SECTION("a newer database is refused and left as it was") {
        { loom::PostgresStore store(schema.url()); }
        {
            pqxx::work tx(admin);
            tx.exec("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)");
            tx.commit();
        }
        const auto before = migrations();
        try {
            loom::PostgresStore store(schema.url());
            FAIL("a database from a newer Loom was opened");
        } catch (const loom::StoreError& e) {
            CHECK(e.id() == std::string(loom::error_id::store_schema_too_new));
            CHECK_THAT(e.what(), Catch::Contains("999") && Catch::Contains("PostgreSQL database loom"));
        }
        CHECK(migrations() == before);
    }
}

TEST_CASE("a server crash-restart between and during commits loses and duplicates nothing",
          "[store][postgres][reliability]") {
    WithRun fixture(20s);
    loom::PostgresStore& store = fixture.store;

    int count = 0;
    SECTION("between commits") {
        for (; count < 3; ++count) store.commit(numbered_event(count));
        loom::test::pg_server("restart");
        for (; count < 6; ++count) store.commit(numbered_event(count));
        loom::test::pg_server("restart");
        CHECK(store.load_run("r"));   // the reader rides it out too
    }
    SECTION("while another thread commits") {
        Committer committer(store);
        for (int restart = 0; restart < 3; ++restart) {
            committer.wait_for(5);
            loom::test::pg_server("restart");
        }
        committer.wait_for(5);
        count = committer.finish();
    }
    require_each_once(store, count);
}

TEST_CASE("pg_terminate_backend on the store's connections is ridden out", "[store][postgres][reliability]") {
    WithRun fixture(10s);
    loom::PostgresStore& store = fixture.store;

    Committer committer(store);
    int terminated = 0;
    for (int round = 0; round < 5; ++round) {
        committer.wait_for(20);
        terminated += terminate_others();
        CHECK(store.load_events("r").size() >= 1);   // reads go on too
    }
    committer.wait_for(20);
    const int count = committer.finish();
    CHECK(terminated >= 5);
    require_each_once(store, count);
}

TEST_CASE("a connection lost while COMMIT is on its way is looked up, not run twice",
          "[store][postgres][reliability]") {
    loom::test::PgSchema schema;
    { loom::PostgresStore store(schema.url()); }   // the tables
    loom::detail::PgLink link(schema.url(), 10s, nullptr);
    link.transact<pqxx::work>([] { return std::string("registering"); }, [](pqxx::work& tx) {
        tx.exec("INSERT INTO store_commits VALUES ('test-writer', 0, 0)");
        tx.exec("CREATE TABLE counted (n integer)");
    });
    link.track_commits("test-writer");

    int attempts = 0;
    SECTION("it did not commit: run again") {
        // The first attempt's backend is terminated after its work, while the
        // transaction is idle: COMMIT then meets a dead connection, which
        // libpqxx reports as in doubt. The lookup finds it did not commit.
        const int result = link.transact<pqxx::work>([] { return std::string("counting"); }, [&](pqxx::work& tx) {
            ++attempts;
            tx.exec("INSERT INTO counted VALUES (1)");
            if (attempts == 1) {
                const int pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
                pqxx::connection admin(loom::test::pg_url());
                pqxx::nontransaction killer(admin);
                killer.exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
                // Wait until it is gone, so that COMMIT surely fails.
                while (!killer.exec("SELECT 1 FROM pg_stat_activity WHERE pid = " + std::to_string(pid)).empty())
                    std::this_thread::sleep_for(1ms);
            }
            return attempts;
        });
        CHECK(attempts == 2);
        CHECK(result == 2);
    }
    SECTION("it committed, only the reply was lost: not run again") {
        const int result = link.transact<LosesCommitReply>([] { return std::string("counting"); },
                                                           [&](LosesCommitReply& tx) {
                                                               ++attempts;
                                                               tx.exec("INSERT INTO counted VALUES (1)");
                                                               return attempts;
                                                           });
        CHECK(attempts == 1);
        CHECK(result == 1);   // what the committed transaction computed
    }
    // call(): one statement in autocommit mode, which records its commit
    // number itself; the reply is lost after it ran, or before it was sent.
    auto counting_statement = [&](bool runs) {
        link.call([] { return std::string("counting"); }, [&](pqxx::nontransaction& tx, std::int64_t no) {
            ++attempts;
            if (attempts == 1 && !runs) throw pqxx::broken_connection("lost before the statement was sent");
            tx.exec_params("WITH c AS (UPDATE store_commits SET commits = $1 WHERE writer = 'test-writer') "
                           "INSERT INTO counted VALUES (1)",
                           no);
            if (attempts == 1) throw pqxx::broken_connection("the reply was lost");
        });
    };
    SECTION("call(): it committed, only the reply was lost: not run again") {
        counting_statement(true);
        CHECK(attempts == 1);
    }
    SECTION("call(): it did not run: run again") {
        counting_statement(false);
        CHECK(attempts == 2);
    }
    pqxx::connection check(schema.url());
    pqxx::nontransaction tx(check);
    CHECK(tx.exec("SELECT count(*) FROM counted")[0][0].as<int>() == 1);
    CHECK(tx.exec("SELECT commits FROM store_commits WHERE writer = 'test-writer'")[0][0].as<int>() == 1);
    // The link goes on: the next transaction is tracked as the next commit.
    link.transact<pqxx::work>([] { return std::string("counting"); },
                              [](pqxx::work& w) { w.exec("INSERT INTO counted VALUES (2)"); });
    CHECK(tx.exec("SELECT commits FROM store_commits WHERE writer = 'test-writer'")[0][0].as<int>() == 2);
}

TEST_CASE("a server down past the retry budget fails the commit with StoreError and writes nothing",
          "[store][postgres][reliability]") {
    WithRun fixture(1500ms);
    loom::PostgresStore& store = fixture.store;
    store.commit(numbered_event(0));

    loom::Batch batch = numbered_event(1);
    batch.new_runs.push_back(new_run("r2"));
    batch.events.push_back(loom::RunEvent{0, "r2", "", "test.numbered", 0, "r2", at(1)});
    loom::test::pg_server("down");
    const auto start = std::chrono::steady_clock::now();
    try {
        store.commit(batch);
        FAIL("a commit went through with the server down");
    } catch (const loom::StoreError& e) {
        CHECK(e.id() == std::string(loom::error_id::store_io));
        CHECK_THAT(e.what(), Catch::Contains("PostgreSQL database loom") && Catch::Contains("committing") &&
                                 Catch::Contains("gave up") && Catch::Contains("run r"));
    }
    CHECK(std::chrono::steady_clock::now() - start >= 1400ms);
    CHECK_THROWS_AS(store.load_run("r"), loom::StoreError);
    loom::test::pg_server("up");

    CHECK_FALSE(store.load_run("r2"));
    require_each_once(store, 1);
    store.commit(batch);   // the same batch, now that the server is back
    CHECK(store.load_run("r2"));
    require_each_once(store, 2);
}

TEST_CASE("executors claiming together never both get a run", "[store][postgres][ownership]") {
    loom::test::PgSchema schema;
    std::vector<std::unique_ptr<loom::PostgresStore>> stores;
    for (int i = 0; i < 4; ++i) stores.push_back(std::make_unique<loom::PostgresStore>(schema.url()));
    save_etl(*stores[0]);
    constexpr int kRuns = 200;
    loom::Batch create;
    for (int i = 0; i < kRuns; ++i) create.new_runs.push_back(new_run("r" + std::to_string(i)));
    stores[0]->commit(create);

    std::vector<std::vector<loom::RunId>> claimed(stores.size());
    std::vector<std::thread> claimers;
    for (std::size_t i = 0; i < stores.size(); ++i) {
        claimers.emplace_back([&, i] {
            loom::ClaimRequest request;
            request.owner = "executor-" + std::to_string(i);
            request.now = at(1000);
            request.until = at(60'000);
            request.limit = 3;
            for (;;) {
                auto got = stores[i]->claim_runs(request);
                if (got.empty()) return;
                claimed[i].insert(claimed[i].end(), got.begin(), got.end());
            }
        });
    }
    for (auto& t : claimers) t.join();

    std::set<loom::RunId> all;
    std::size_t total = 0;
    for (std::size_t i = 0; i < stores.size(); ++i) {
        total += claimed[i].size();
        all.insert(claimed[i].begin(), claimed[i].end());
        for (const auto& id : claimed[i]) CHECK(stores[0]->load_run(id)->owner == "executor-" + std::to_string(i));
    }
    CHECK(total == kRuns);
    CHECK(all.size() == static_cast<std::size_t>(kRuns));
}

// controlled_runs' mark is the last event seq a reader saw; a request committed
// with a lower seq after the reader looked would be missed for good. Requests
// from several executors at once must each reach the owner.
TEST_CASE("every request committed concurrently reaches its owner's controlled_runs",
          "[store][postgres][ownership]") {
    loom::test::PgSchema schema;
    loom::PostgresStore owner_store(schema.url());
    save_etl(owner_store);
    constexpr int kWriters = 3, kPerWriter = 60;
    loom::Batch create;
    for (int i = 0; i < kWriters * kPerWriter; ++i) {
        loom::RunInfo run = new_run("r" + std::to_string(i));
        run.owner = "a";
        run.lease_until = at(60'000);
        create.new_runs.push_back(run);
    }
    owner_store.commit(create);

    std::atomic<int> writing{kWriters};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            loom::PostgresStore store(schema.url());
            for (int i = w * kPerWriter; i < (w + 1) * kPerWriter; ++i) {
                const std::string id = "r" + std::to_string(i);
                loom::Batch batch;
                batch.controls.push_back(loom::RunControl{id, true, std::nullopt});
                batch.events.push_back(loom::RunEvent{0, id, "", "run.cancel_requested", 0, "", at(2000)});
                store.commit(batch);
            }
            --writing;
        });
    }
    std::set<loom::RunId> reached;
    std::int64_t mark = 0;
    while (writing > 0) {
        for (const auto& id : owner_store.controlled_runs("a", mark)) reached.insert(id);
    }
    for (auto& t : writers) t.join();
    for (const auto& id : owner_store.controlled_runs("a", mark)) reached.insert(id);
    CHECK(reached.size() == static_cast<std::size_t>(kWriters * kPerWriter));
    CHECK(owner_store.controlled_runs("a", mark).empty());
}

TEST_CASE("an executor runs workflows on PostgreSQL through a server crash-restart",
          "[store][postgres][reliability]") {
    loom::test::PgSchema schema;
    loom::PostgresStore store(schema.url(), budget(20s));
    loom::HandlerRegistry handlers;
    handlers.add("add", [](loom::StepContext& ctx) -> loom::Json {
        std::this_thread::sleep_for(2ms);
        return ctx.input<int>("value") + ctx.input<int>("plus");
    });
    auto workflow = loom::WorkflowBuilder("chain", 1)
        .step("first", "add").input({{"value", "${input.start}"}, {"plus", 1}})
        .step("second", "add").input({{"value", "${steps.first.output}"}, {"plus", 10}}).after("first")
        .step("third", "add").input({{"value", "${steps.second.output}"}, {"plus", 100}}).after("second")
        .build();
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(workflow);

    std::vector<loom::RunId> runs;
    for (int i = 0; i < 40; ++i) {
        runs.push_back(executor.start("chain", {{"start", i}}));
        if (i == 20) loom::test::pg_server("restart");
    }
    for (int i = 0; i < 40; ++i) {
        const loom::RunInfo run = executor.wait(runs[i]);
        CHECK(run.status == loom::RunStatus::completed);
        CHECK(run.output == loom::Json{{"third", i + 111}});
    }
    // What the store holds agrees: each step completed once, started once.
    for (const auto& id : runs) {
        const auto stored = store.load_run(id);
        REQUIRE(stored);
        CHECK(stored->status == loom::RunStatus::completed);
        int started = 0;
        for (const auto& e : store.load_events(id)) started += e.kind == loom::event::step_started;
        CHECK(started == 3);
    }
}

#endif
