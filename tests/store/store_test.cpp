// The Store conformance suite: one set of behaviours, run against every backend,
// so that the executor may rely on the contract in store.hpp whatever it runs on.
#include <algorithm>
#include <cstdint>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <loom/error.hpp>
#include <loom/error_ids.hpp>
#include <loom/events.hpp>
#include <loom/memory_store.hpp>
#include <loom/store.hpp>
#include <loom/sqlite_store.hpp>

#include "support/temp_dir.hpp"

#ifdef LOOM_TEST_POSTGRES
#include <loom/postgres_store.hpp>

#include "support/pg_schema.hpp"
#endif

namespace {

using namespace std::chrono_literals;
using loom::RunStatus;
using loom::StepStatus;

struct MemoryFixture {
    loom::MemoryStore store;
};

struct SqliteFixture {
    loom::test::TempDir dir;
    loom::SqliteStore store{dir.file("store.db")};
};

// Every backend this build has: PostgreSQL's when built with LOOM_WITH_POSTGRES,
// each case in a fresh schema of the test server's database.
#ifdef LOOM_TEST_POSTGRES
struct PostgresFixture {
    loom::test::PgSchema schema;
    loom::PostgresStore store{schema.url()};
};
#define LOOM_STORE_FIXTURES MemoryFixture, SqliteFixture, PostgresFixture
#else
#define LOOM_STORE_FIXTURES MemoryFixture, SqliteFixture
#endif

// An instant `ms` milliseconds after the epoch, plus `extra` below the millisecond
// that a store drops.
loom::TimePoint at(std::int64_t ms, std::chrono::microseconds extra = 0us) {
    return loom::TimePoint(std::chrono::milliseconds(ms) + extra);
}

loom::WorkflowRecord workflow(const std::string& name, std::int64_t version,
                              const std::string& hash = "h1") {
    loom::WorkflowRecord record;
    record.name = name;
    record.version = version;
    record.hash = hash;
    record.definition = {{"name", name}, {"version", version}, {"steps", {{{"id", "a"}}}}};
    record.created_at = at(1'700'000'000'000);
    return record;
}

// A new run of etl v1 whose steps are deliberately not in alphabetical order.
loom::RunInfo new_run(const std::string& id, std::int64_t created_ms = 1'700'000'000'000,
                      const std::string& workflow_name = "etl") {
    loom::RunInfo run;
    run.id = id;
    run.workflow_name = workflow_name;
    run.workflow_version = 1;
    run.workflow_hash = "h1";
    run.input = {{"url", "https://example.org"}, {"n", 3}};
    run.created_at = at(created_ms);
    run.updated_at = at(created_ms);
    for (const char* step_id : {"extract", "transform", "load"}) {
        loom::StepInfo step;
        step.step_id = step_id;
        run.steps.push_back(step);
    }
    run.steps[0].status = StepStatus::ready;
    return run;
}

loom::Batch creating(std::vector<loom::RunInfo> runs) {
    loom::Batch batch;
    batch.new_runs = std::move(runs);
    return batch;
}

// Commits the end of a run.
void finish_run(loom::Store& store, const std::string& id, RunStatus status) {
    loom::Batch batch;
    loom::RunWrite write;
    write.run_id = id;
    write.status = status;
    batch.runs.push_back(write);
    store.commit(batch);
}

loom::StepWrite step_write(const std::string& run_id, const std::string& step_id,
                           StepStatus status = StepStatus::running) {
    loom::StepWrite write;
    write.run_id = run_id;
    write.step_id = step_id;
    write.status = status;
    write.attempts = 1;
    write.started_at = at(1'700'000'001'000);
    return write;
}

loom::RunEvent event(const std::string& run_id, const std::string& kind,
                     const std::string& step_id = {}) {
    loom::RunEvent e;
    e.run_id = run_id;
    e.step_id = step_id;
    e.kind = kind;
    e.attempt = step_id.empty() ? 0 : 1;
    e.at = at(1'700'000'002'000);
    return e;
}

// The exception f throws, which must be an E.
template <class E, class F>
E thrown(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e;
    }
    FAIL("no exception was thrown");
    return E("", "");
}

void require_same_steps(const std::vector<loom::StepInfo>& a,
                        const std::vector<loom::StepInfo>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].step_id == b[i].step_id);
        CHECK(a[i].status == b[i].status);
        CHECK(a[i].attempts == b[i].attempts);
        CHECK(a[i].output == b[i].output);
        CHECK(a[i].error == b[i].error);
        CHECK(a[i].started_at == b[i].started_at);
        CHECK(a[i].finished_at == b[i].finished_at);
        CHECK(a[i].wake_at == b[i].wake_at);
    }
}

void require_same(const loom::RunInfo& a, const loom::RunInfo& b) {
    CHECK(a.id == b.id);
    CHECK(a.workflow_name == b.workflow_name);
    CHECK(a.workflow_version == b.workflow_version);
    CHECK(a.workflow_hash == b.workflow_hash);
    CHECK(a.status == b.status);
    CHECK(a.cancel_requested == b.cancel_requested);
    CHECK(a.input == b.input);
    CHECK(a.output == b.output);
    CHECK(a.error == b.error);
    CHECK(a.created_at == b.created_at);
    CHECK(a.updated_at == b.updated_at);
    CHECK(a.finished_at == b.finished_at);
    CHECK(a.idempotency_key == b.idempotency_key);
    CHECK(a.priority == b.priority);
    CHECK(a.paused == b.paused);
    require_same_steps(a.steps, b.steps);
}

std::vector<loom::RunId> ids(const std::vector<loom::RunInfo>& runs) {
    std::vector<loom::RunId> out;
    for (const auto& run : runs) out.push_back(run.id);
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("save_workflow stores a definition once and refuses changed content", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;

    REQUIRE(store.save_workflow(workflow("etl", 1, "aaa")));
    REQUIRE_FALSE(store.save_workflow(workflow("etl", 1, "aaa")));

    auto conflict = thrown<loom::Conflict>([&] { store.save_workflow(workflow("etl", 1, "bbb")); });
    CHECK(conflict.id() == loom::error_id::store_definition_conflict);
    for (const char* part : {"etl", "version 1", "aaa", "bbb"}) {
        CHECK_THAT(conflict.what(), Catch::Contains(part));
    }
    REQUIRE(store.load_workflow("etl", 1)->hash == "aaa");
    REQUIRE(store.list_workflows().size() == 1);
}

TEMPLATE_TEST_CASE("load_workflow finds the latest or a given version", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.save_workflow(workflow("etl", 3));
    loom::WorkflowRecord saved = workflow("etl", 2);
    saved.created_at = at(1'700'000'000'123, 456us);   // stored to the millisecond
    store.save_workflow(saved);
    store.save_workflow(workflow("other", 7));

    REQUIRE(store.load_workflow("etl")->version == 3);
    auto two = store.load_workflow("etl", 2);
    REQUIRE(two);
    CHECK(two->name == "etl");
    CHECK(two->hash == "h1");
    CHECK(two->definition == workflow("etl", 2).definition);
    CHECK(two->created_at == at(1'700'000'000'123));
    CHECK_FALSE(store.load_workflow("etl", 4));
    CHECK_FALSE(store.load_workflow("missing"));
    CHECK_FALSE(store.load_workflow("missing", 1));
}

TEMPLATE_TEST_CASE("list_workflows orders by name then version", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    CHECK(store.list_workflows().empty());
    store.save_workflow(workflow("b", 1));
    store.save_workflow(workflow("a", 10));
    store.save_workflow(workflow("a", 2));
    store.save_workflow(workflow("a", 1));

    std::vector<std::pair<std::string, std::int64_t>> listed;
    for (const auto& record : store.list_workflows()) {
        listed.emplace_back(record.name, record.version);
    }
    REQUIRE(listed == std::vector<std::pair<std::string, std::int64_t>>{
                          {"a", 1}, {"a", 2}, {"a", 10}, {"b", 1}});
}

TEMPLATE_TEST_CASE("a new run comes back with every field and its steps in definition order",
                   "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));

    loom::RunInfo run = new_run("r1");
    run.created_at = at(1'700'000'000'123, 999us);   // stored to the millisecond
    run.updated_at = at(1'700'000'000'124);
    run.cancel_requested = true;
    run.priority = -7;
    run.paused = true;
    run.steps[1].status = StepStatus::failed;
    run.steps[1].attempts = 3;
    run.steps[1].error = "boom";
    run.steps[1].output = {{"partial", {1, 2}}};
    run.steps[1].started_at = at(1'700'000'000'200, 1us);
    run.steps[1].finished_at = at(1'700'000'000'300);
    store.commit(creating({run}));

    auto loaded = store.load_run("r1");
    REQUIRE(loaded);
    loom::RunInfo expected = run;
    expected.created_at = at(1'700'000'000'123);
    expected.steps[1].started_at = at(1'700'000'000'200);
    require_same(*loaded, expected);
    CHECK(loaded->steps[0].step_id == "extract");
    CHECK(loaded->steps[2].step_id == "load");
    CHECK_FALSE(loaded->steps[0].started_at);
    CHECK(loaded->step("transform")->error == "boom");
    CHECK_FALSE(store.load_run("r2"));
}

TEMPLATE_TEST_CASE("step and run writes replace the mutable columns", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({new_run("r1")}));

    loom::Batch batch;
    batch.steps.push_back(step_write("r1", "extract"));
    loom::StepWrite done = step_write("r1", "extract", StepStatus::completed);
    done.attempts = 2;
    done.output = {{"rows", 42}, {"names", {"x", "y"}}};
    done.finished_at = at(1'700'000'001'500, 700us);
    batch.steps.push_back(done);   // last write in a batch wins
    batch.steps.push_back(step_write("r1", "transform", StepStatus::ready));
    loom::RunWrite run_write;
    run_write.run_id = "r1";
    run_write.status = RunStatus::failed;
    run_write.cancel_requested = true;
    run_write.output = {{"load", nullptr}};
    run_write.error = "step load failed: disk full";
    run_write.updated_at = at(1'700'000'003'000);
    run_write.finished_at = at(1'700'000'003'001);
    run_write.paused = true;
    batch.runs.push_back(run_write);
    store.commit(batch);

    auto run = store.load_run("r1");
    REQUIRE(run);
    const loom::StepInfo& extract = *run->step("extract");
    CHECK(extract.status == StepStatus::completed);
    CHECK(extract.attempts == 2);
    CHECK(extract.output == done.output);
    CHECK(extract.started_at == at(1'700'000'001'000));
    CHECK(extract.finished_at == at(1'700'000'001'500));
    CHECK(run->step("transform")->status == StepStatus::ready);
    CHECK(run->step("load")->status == StepStatus::pending);
    CHECK(run->status == RunStatus::failed);
    CHECK(run->cancel_requested);
    CHECK(run->paused);
    CHECK(run->output == run_write.output);
    CHECK(run->error == run_write.error);
    CHECK(run->updated_at == at(1'700'000'003'000));
    CHECK(run->finished_at == at(1'700'000'003'001));
    CHECK(run->created_at == at(1'700'000'000'000));

    // A later write clears what it leaves empty.
    loom::Batch retry;
    retry.steps.push_back(step_write("r1", "extract", StepStatus::pending));
    store.commit(retry);
    run = store.load_run("r1");
    CHECK(run->step("extract")->output.is_null());
    CHECK_FALSE(run->step("extract")->finished_at);
}

TEMPLATE_TEST_CASE("waiting and skipped steps keep their status and wake_at", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));

    // As a new run's steps.
    loom::RunInfo run = new_run("r1");
    run.steps[0].status = StepStatus::waiting;
    run.steps[0].attempts = 1;
    run.steps[0].error = "timeout";
    run.steps[0].wake_at = at(1'700'000'000'900, 999us);   // stored to the millisecond
    run.steps[2].status = StepStatus::skipped;
    store.commit(creating({run}));
    auto loaded = store.load_run("r1");
    REQUIRE(loaded);
    CHECK(loaded->step("extract")->status == StepStatus::waiting);
    CHECK(loaded->step("extract")->wake_at == at(1'700'000'000'900));
    CHECK(loaded->step("load")->status == StepStatus::skipped);
    CHECK_FALSE(loaded->step("load")->wake_at);

    // As step writes: set, moved, then cleared by a write that leaves it empty.
    loom::StepWrite wait = step_write("r1", "transform", StepStatus::waiting);
    wait.wake_at = at(1'700'000'005'000, 10us);
    loom::Batch batch;
    batch.steps = {wait, step_write("r1", "load", StepStatus::skipped)};
    store.commit(batch);
    loaded = store.load_run("r1");
    CHECK(loaded->step("transform")->status == StepStatus::waiting);
    CHECK(loaded->step("transform")->wake_at == at(1'700'000'005'000));
    CHECK(loaded->step("load")->status == StepStatus::skipped);

    wait.attempts = 2;
    wait.wake_at = at(1'700'000'009'000);
    batch.steps = {wait, step_write("r1", "extract", StepStatus::running)};
    store.commit(batch);
    loaded = store.load_run("r1");
    CHECK(loaded->step("transform")->wake_at == at(1'700'000'009'000));
    CHECK(loaded->step("transform")->attempts == 2);
    CHECK(loaded->step("extract")->status == StepStatus::running);
    CHECK_FALSE(loaded->step("extract")->wake_at);
}

TEMPLATE_TEST_CASE("for_each elements are upserted by index, come back in order, and reset_items deletes them",
                   "[store][for_each]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({new_run("r1")}));
    auto item = [](std::uint32_t index, StepStatus status, int attempts, loom::Json output) {
        loom::ItemInfo i;
        i.index = index;
        i.status = status;
        i.attempts = attempts;
        i.output = std::move(output);
        i.wake_at = status == StepStatus::waiting ? std::optional(at(1'700'000'001'000, 5us)) : std::nullopt;
        return loom::ItemWrite{"r1", "transform", i};
    };
    loom::Batch batch;
    batch.items = {item(2, StepStatus::completed, 1, "two"), item(0, StepStatus::waiting, 1, nullptr)};
    store.commit(batch);
    batch.items = {item(0, StepStatus::completed, 2, "zero")};   // the same index: replaced
    store.commit(batch);
    auto loaded = store.load_run("r1");
    REQUIRE(loaded);
    const auto& items = loaded->step("transform")->items;
    REQUIRE(items.size() == 2);
    CHECK(items[0].index == 0);
    CHECK(items[0].status == StepStatus::completed);
    CHECK(items[0].attempts == 2);
    CHECK(items[0].output == "zero");
    CHECK_FALSE(items[0].wake_at);
    CHECK(items[1].index == 2);
    CHECK(items[1].output == "two");
    CHECK(loaded->step("extract")->items.empty());

    // An element of a step that does not exist: the batch fails and changes nothing.
    batch.items = {item(5, StepStatus::completed, 1, 5), loom::ItemWrite{"r1", "nope", {}}};
    CHECK_THROWS_AS(store.commit(batch), loom::StoreError);
    CHECK(store.load_run("r1")->step("transform")->items.size() == 2);

    // reset_items deletes the step's elements before the batch's item writes.
    loom::StepWrite reset = step_write("r1", "transform", StepStatus::running);
    reset.reset_items = true;
    batch.steps = {reset};
    batch.items = {item(1, StepStatus::completed, 1, "one")};
    store.commit(batch);
    const auto after = store.load_run("r1")->step("transform")->items;
    REQUIRE(after.size() == 1);
    CHECK(after[0].index == 1);
}

TEMPLATE_TEST_CASE("an idempotency key is stored with its run and finds it", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::RunInfo keyed = new_run("r1", 1000);
    keyed.idempotency_key = "order-42";
    store.commit(creating({keyed, new_run("r2", 2000)}));

    auto loaded = store.load_run("r1");
    REQUIRE(loaded);
    require_same(*loaded, keyed);
    CHECK(store.load_run("r2")->idempotency_key.empty());

    auto listed = store.list_runs();
    REQUIRE(ids(listed) == std::vector<loom::RunId>{"r2", "r1"});
    CHECK(listed[0].idempotency_key.empty());
    CHECK(listed[1].idempotency_key == "order-42");

    CHECK(store.find_run_by_key("order-42") == loom::RunId("r1"));
    CHECK_FALSE(store.find_run_by_key("order-43"));
    CHECK_FALSE(store.find_run_by_key("ORDER-42"));
    CHECK_FALSE(store.find_run_by_key(""));   // an empty key is none, not r2's
    loom::StoreWrapper wrapper(store);
    CHECK(wrapper.find_run_by_key("order-42") == loom::RunId("r1"));

    // Runs without a key never conflict with one another.
    store.commit(creating({new_run("r3", 3000), new_run("r4", 3000)}));
    CHECK(store.list_runs().size() == 4);
}

TEMPLATE_TEST_CASE("an idempotency key is used once", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::RunInfo first = new_run("r1");
    first.idempotency_key = "k";
    loom::Batch setup = creating({first});
    setup.events.push_back(event("r1", loom::event::run_started));
    store.commit(setup);
    const loom::RunInfo before = *store.load_run("r1");

    // Otherwise valid changes come first, so that the refusal must undo them.
    loom::RunInfo again = new_run("r3", 1'700'000'000'003);
    again.idempotency_key = "k";
    loom::Batch batch = creating({new_run("r2", 1'700'000'000'002)});
    std::string holder = "r1";
    SECTION("against a stored run") {}
    SECTION("twice in one batch") {
        loom::RunInfo earlier = new_run("r4", 1'700'000'000'004);
        earlier.idempotency_key = "k2";
        batch.new_runs.push_back(earlier);
        again.idempotency_key = "k2";
        holder = "r4";
    }
    batch.new_runs.push_back(again);
    batch.steps.push_back(step_write("r1", "extract", StepStatus::completed));
    batch.events.push_back(event("r2", loom::event::run_started));

    auto error = thrown<loom::Conflict>([&] { store.commit(batch); });
    CHECK(error.id() == loom::error_id::run_duplicate_key);
    CHECK(std::string(error.what()) == "[loom.run.duplicate_key] run r3: idempotency key '" +
                                           again.idempotency_key + "' already belongs to run " +
                                           holder);

    require_same(*store.load_run("r1"), before);
    for (const char* id : {"r2", "r3", "r4"}) CHECK_FALSE(store.load_run(id));
    CHECK(ids(store.list_runs()) == std::vector<loom::RunId>{"r1"});
    CHECK(store.load_events("r1").size() == 1);
    CHECK(store.find_run_by_key("k") == loom::RunId("r1"));
    CHECK_FALSE(store.find_run_by_key("k2"));

    // Nothing of the refused batch is held: its other key is still free.
    loom::RunInfo later = new_run("r5", 1'700'000'000'005);
    later.idempotency_key = "k2";
    store.commit(creating({later}));
    CHECK(store.find_run_by_key("k2") == loom::RunId("r5"));
}

TEMPLATE_TEST_CASE("events keep commit order and get increasing seq", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::Batch first = creating({new_run("r1"), new_run("r2")});
    first.events = {event("r1", loom::event::run_started), event("r2", loom::event::run_started),
                    event("r1", loom::event::step_started, "extract")};
    store.commit(first);
    loom::Batch second;
    loom::RunEvent failed = event("r1", loom::event::step_failed, "extract");
    failed.detail = "timeout after 5s";
    failed.at = at(1'700'000'002'500, 300us);
    loom::RunEvent retried = event("r1", loom::event::step_started, "extract");
    retried.attempt = 2;
    second.events = {failed, retried};
    store.commit(second);

    auto events = store.load_events("r1");
    REQUIRE(events.size() == 4);
    std::vector<std::string> kinds;
    for (const auto& e : events) kinds.push_back(e.kind);
    CHECK(kinds == std::vector<std::string>{loom::event::run_started, loom::event::step_started, loom::event::step_failed,
                                            loom::event::step_started});
    for (std::size_t i = 1; i < events.size(); ++i) CHECK(events[i].seq > events[i - 1].seq);
    CHECK(events[0].step_id.empty());
    CHECK(events[0].attempt == 0);
    CHECK(events[2].run_id == "r1");
    CHECK(events[2].step_id == "extract");
    CHECK(events[2].attempt == 1);
    CHECK(events[2].detail == "timeout after 5s");
    CHECK(events[2].at == at(1'700'000'002'500));

    auto other = store.load_events("r2");
    REQUIRE(other.size() == 1);
    // seq is one counter for the whole store, so it orders events across runs too.
    CHECK(other[0].seq > events[0].seq);
    CHECK(other[0].seq < events[1].seq);
    CHECK(store.load_events("unknown").empty());
}

TEMPLATE_TEST_CASE("writes may target runs created earlier in the same batch", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::Batch batch = creating({new_run("r1")});
    batch.steps.push_back(step_write("r1", "extract"));
    loom::RunWrite run_write;
    run_write.run_id = "r1";
    run_write.status = RunStatus::cancelled;
    run_write.updated_at = at(1'700'000'000'500);
    batch.runs.push_back(run_write);
    batch.events.push_back(event("r1", loom::event::run_started));
    store.commit(batch);

    auto run = store.load_run("r1");
    REQUIRE(run);
    CHECK(run->status == RunStatus::cancelled);
    CHECK(run->step("extract")->status == StepStatus::running);
    CHECK(store.load_events("r1").size() == 1);
}

TEMPLATE_TEST_CASE("a batch with one bad write changes nothing", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::Batch setup = creating({new_run("r1")});
    setup.events.push_back(event("r1", loom::event::run_started));
    store.commit(setup);
    const loom::RunInfo before = *store.load_run("r1");

    // Every part of the batch is valid but one; the good parts come first.
    loom::Batch batch = creating({new_run("r2", 1'700'000'000'001)});
    batch.steps.push_back(step_write("r1", "extract", StepStatus::completed));
    loom::RunWrite run_write;
    run_write.run_id = "r1";
    run_write.status = RunStatus::completed;
    batch.runs.push_back(run_write);
    batch.events.push_back(event("r1", loom::event::step_completed, "extract"));
    batch.events.push_back(event("r2", loom::event::run_started));

    std::string expected_id = loom::error_id::store_missing_row;
    SECTION("a step that does not exist") {
        batch.steps.push_back(step_write("r1", "nope"));
    }
    SECTION("a step of a run that does not exist") {
        batch.steps.push_back(step_write("nope", "extract"));
    }
    SECTION("a run that does not exist") {
        run_write.run_id = "nope";
        batch.runs.push_back(run_write);
    }
    SECTION("an event of a run that does not exist") {
        batch.events.push_back(event("nope", loom::event::run_started));
    }
    SECTION("a new run of a workflow that is not stored") {
        batch.new_runs.push_back(new_run("r3", 1'700'000'000'002, "unknown"));
        expected_id = loom::error_id::store_unknown_workflow;
    }
    SECTION("a new run that lists a step twice") {
        loom::RunInfo twice = new_run("r3");
        twice.steps.push_back(twice.steps[0]);
        batch.new_runs.push_back(twice);
        expected_id = loom::error_id::store_duplicate_step;
    }

    auto error = thrown<loom::StoreError>([&] { store.commit(batch); });
    CHECK(error.id() == expected_id);
    if (expected_id == loom::error_id::store_missing_row) CHECK_THAT(error.what(), Catch::Contains("nope"));

    require_same(*store.load_run("r1"), before);
    CHECK_FALSE(store.load_run("r2"));
    CHECK_FALSE(store.load_run("r3"));
    CHECK(store.load_events("r1").size() == 1);
    CHECK(store.load_events("r2").empty());
    CHECK(ids(store.list_runs()) == std::vector<loom::RunId>{"r1"});
    CHECK(store.unfinished_runs() == std::vector<loom::RunId>{"r1"});

    // The store is still usable, and the failed batch's new run id is still free.
    store.commit(creating({new_run("r2", 1'700'000'000'001)}));
    CHECK(store.load_run("r2"));
}

TEMPLATE_TEST_CASE("a run id is used once", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({new_run("r1")}));

    SECTION("against a stored run") {
        loom::RunInfo again = new_run("r1", 1'700'000'009'000);
        again.input = {{"other", true}};
        auto error = thrown<loom::Conflict>([&] { store.commit(creating({again})); });
        CHECK(error.id() == loom::error_id::store_duplicate_run);
        CHECK_THAT(error.what(), Catch::Contains("r1"));
        CHECK(store.load_run("r1")->input == new_run("r1").input);
    }
    SECTION("twice in one batch") {
        auto error = thrown<loom::Conflict>(
            [&] { store.commit(creating({new_run("r2"), new_run("r2")})); });
        CHECK(error.id() == loom::error_id::store_duplicate_run);
        CHECK_FALSE(store.load_run("r2"));
    }
    CHECK(store.list_runs().size() == 1);
}

// A claim made twice (two executors starting one attempt) is refused by the
// store itself, whatever the executor does.
TEMPLATE_TEST_CASE("a step attempt starts once", "[store][contention]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    loom::Batch setup = creating({new_run("r1")});
    setup.events = {event("r1", loom::event::run_started), event("r1", loom::event::step_started, "extract")};
    store.commit(setup);
    const loom::RunInfo before = *store.load_run("r1");

    // Otherwise valid writes come first, so that the refusal must undo them.
    loom::Batch batch = creating({new_run("r2", 1'700'000'000'001)});
    batch.steps.push_back(step_write("r1", "extract", StepStatus::completed));
    batch.events = {event("r2", loom::event::step_started, "extract"), event("r1", loom::event::step_completed, "extract")};
    SECTION("against a stored start") {
        batch.events.push_back(event("r1", loom::event::step_started, "extract"));
    }
    SECTION("twice in one batch") {
        loom::RunEvent second = event("r1", loom::event::step_started, "transform");
        batch.events.push_back(second);
        batch.events.push_back(second);
    }
    auto error = thrown<loom::Conflict>([&] { store.commit(batch); });
    CHECK(error.id() == loom::error_id::store_duplicate_attempt);
    CHECK_THAT(error.what(), Catch::Contains("attempt 1 of step") && Catch::Contains("of run r1"));

    require_same(*store.load_run("r1"), before);
    CHECK_FALSE(store.load_run("r2"));
    CHECK(store.load_events("r1").size() == 2);
    CHECK(store.load_events("r2").empty());

    // Nothing of the refused batch is held: the same starts, once each, and the
    // next attempt of the stored one, are accepted.
    loom::Batch good = creating({new_run("r2", 1'700'000'000'001)});
    loom::RunEvent next = event("r1", loom::event::step_started, "extract");
    next.attempt = 2;
    good.events = {event("r2", loom::event::step_started, "extract"), event("r1", loom::event::step_started, "transform"),
                   next};
    store.commit(good);
    CHECK(store.load_events("r1").size() == 4);
    CHECK(store.load_events("r2").size() == 1);
}

TEMPLATE_TEST_CASE("list_runs filters and returns newest first without steps", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.save_workflow(workflow("report", 1));
    // Created out of order; "e3" and "e4" share a millisecond, so the id decides.
    store.commit(creating({new_run("e2", 2000), new_run("e1", 1000),
                           new_run("r1", 1500, "report")}));
    store.commit(creating({new_run("e3", 3000), new_run("e4", 3000)}));
    loom::Batch finish;
    for (const char* id : {"e1", "e4"}) {
        loom::RunWrite write;
        write.run_id = id;
        write.status = RunStatus::completed;
        write.updated_at = at(4000);
        write.finished_at = at(4000);
        finish.runs.push_back(write);
    }
    store.commit(finish);

    auto all = store.list_runs();
    CHECK(ids(all) == std::vector<loom::RunId>{"e4", "e3", "e2", "r1", "e1"});
    for (const auto& run : all) CHECK(run.steps.empty());
    CHECK(all[0].status == RunStatus::completed);
    CHECK(all[0].input == new_run("e4").input);
    CHECK(all[0].finished_at == at(4000));

    loom::RunFilter etl;
    etl.workflow_name = "etl";
    CHECK(ids(store.list_runs(etl)) == std::vector<loom::RunId>{"e4", "e3", "e2", "e1"});

    loom::RunFilter running;
    running.status = RunStatus::running;
    CHECK(ids(store.list_runs(running)) == std::vector<loom::RunId>{"e3", "e2", "r1"});

    loom::RunFilter both = etl;
    both.status = RunStatus::completed;
    CHECK(ids(store.list_runs(both)) == std::vector<loom::RunId>{"e4", "e1"});

    loom::RunFilter limited = etl;
    limited.limit = 2;
    CHECK(ids(store.list_runs(limited)) == std::vector<loom::RunId>{"e4", "e3"});

    loom::RunFilter none;
    none.workflow_name = "missing";
    CHECK(store.list_runs(none).empty());
}

TEMPLATE_TEST_CASE("list_runs pages by cursor and filters by creation and finish time", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    // Five runs in one millisecond (ids decide their order), three later.
    std::vector<loom::RunInfo> runs;
    for (const char* id : {"b", "a", "e", "c", "d"}) runs.push_back(new_run(id, 1000));
    for (int i = 0; i < 3; ++i) runs.push_back(new_run("n" + std::to_string(i), 2000 + i));
    store.commit(creating(runs));
    loom::Batch finish;
    for (const char* id : {"a", "n0"}) {
        loom::RunWrite write;
        write.run_id = id;
        write.status = RunStatus::failed;
        write.updated_at = at(id == std::string("a") ? 5000 : 7000);
        write.finished_at = write.updated_at;
        finish.runs.push_back(write);
    }
    store.commit(finish);

    // Every run once, in order, pages of 3; a page ending inside the
    // millisecond continues inside it.
    loom::RunFilter page;
    page.limit = 3;
    std::vector<loom::RunId> seen;
    for (;;) {
        auto got = store.list_runs(page);
        for (const auto& run : got) seen.push_back(run.id);
        if (got.size() < page.limit) break;
        page.after = loom::RunCursor::parse(loom::RunCursor::after(got.back()).to_string());
    }
    CHECK(seen == std::vector<loom::RunId>{"n2", "n1", "n0", "e", "d", "c", "b", "a"});

    loom::RunFilter range;
    range.since = at(1000);
    range.until = at(2001);
    CHECK(ids(store.list_runs(range)) == std::vector<loom::RunId>{"n0", "e", "d", "c", "b", "a"});
    range.after = loom::RunCursor{at(1000), "c"};
    CHECK(ids(store.list_runs(range)) == std::vector<loom::RunId>{"b", "a"});

    loom::RunFilter old;
    old.finished_before = at(6000);
    CHECK(ids(store.list_runs(old)) == std::vector<loom::RunId>{"a"});
    old.finished_before = at(7001);
    CHECK(ids(store.list_runs(old)) == std::vector<loom::RunId>{"n0", "a"});
}

TEST_CASE("RunCursor's text form round-trips and bad text is refused", "[store]") {
    const loom::RunCursor cursor{at(1234), "run-1.child"};
    const auto back = loom::RunCursor::parse(cursor.to_string());
    CHECK(cursor.to_string() == "1234-run-1.child");
    CHECK(back.created_at == cursor.created_at);
    CHECK(back.id == cursor.id);
    for (const char* bad : {"", "-x", "12", "12-", "x-1", "1x-a"})
        CHECK_THROWS_WITH(loom::RunCursor::parse(bad), Catch::Contains("[loom.cursor.malformed]"));
}

TEMPLATE_TEST_CASE("log lines are stored with their run, read per run and per step", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({new_run("r1"), new_run("r2")}));
    loom::Batch batch;
    batch.logs.push_back(loom::LogRecord{loom::LogLevel::info, "r1", "extract", 1, "first", std::nullopt, at(10)});
    batch.logs.push_back(loom::LogRecord{loom::LogLevel::warn, "r2", "extract", 2, "other run", std::nullopt, at(11)});
    batch.logs.push_back(loom::LogRecord{loom::LogLevel::error, "r1", "load", 3, "second \"quoted\" \xC3\xA9", 7u, at(12)});
    store.commit(batch);
    loom::Batch later;
    later.logs.push_back(loom::LogRecord{loom::LogLevel::debug, "r1", "extract", 1, "third", std::nullopt, at(13)});
    store.commit(later);

    const auto all = store.load_logs("r1");
    REQUIRE(all.size() == 3);
    CHECK(all[0].message == "first");
    CHECK(all[0].level == loom::LogLevel::info);
    CHECK(all[0].step_id == "extract");
    CHECK(all[0].attempt == 1);
    CHECK(!all[0].item);
    CHECK(all[0].at == at(10));
    CHECK(all[1].message == "second \"quoted\" \xC3\xA9");
    CHECK(all[1].level == loom::LogLevel::error);
    CHECK(all[1].item == std::optional<std::uint32_t>(7));
    CHECK(all[2].message == "third");
    const auto extract = store.load_logs("r1", "extract");
    REQUIRE(extract.size() == 2);
    CHECK(extract[1].message == "third");
    CHECK(store.load_logs("r2").size() == 1);
    CHECK(store.load_logs("unknown").empty());
}

TEMPLATE_TEST_CASE("delete_runs deletes final runs with everything they own, and only those", "[store]",
                   LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    auto keyed = new_run("done", 1000);
    keyed.idempotency_key = "k1";
    store.commit(creating({keyed, new_run("live", 2000)}));
    loom::Batch batch;
    loom::ItemWrite item;
    item.run_id = "done";
    item.step_id = "extract";
    item.item.status = StepStatus::completed;
    batch.items.push_back(item);
    loom::RunWrite write;
    write.run_id = "done";
    write.status = RunStatus::completed;
    write.updated_at = at(3000);
    write.finished_at = at(3000);
    batch.runs.push_back(write);
    for (const char* id : {"done", "live"}) {
        loom::RunEvent event;
        event.run_id = id;
        event.kind = "run.note";
        event.at = at(3000);
        batch.events.push_back(event);
        batch.logs.push_back(loom::LogRecord{loom::LogLevel::info, id, "extract", 1, "line", std::nullopt, at(3000)});
    }
    store.commit(batch);

    CHECK(store.delete_runs({"live", "done", "unknown", "done"}) == 1);
    CHECK(!store.load_run("done"));
    CHECK(store.load_events("done").empty());
    CHECK(store.load_logs("done").empty());
    CHECK(!store.find_run_by_key("k1"));
    CHECK(ids(store.list_runs()) == std::vector<loom::RunId>{"live"});
    CHECK(store.load_run("live"));
    CHECK(store.load_events("live").size() == 1);
    CHECK(store.load_logs("live").size() == 1);
    CHECK(store.delete_runs({}) == 0);
    // The key is free again.
    auto again = new_run("again", 4000);
    again.idempotency_key = "k1";
    store.commit(creating({again}));
    CHECK(store.find_run_by_key("k1") == std::optional<loom::RunId>("again"));
}

TEMPLATE_TEST_CASE("unfinished_runs lists running runs oldest first", "[store]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    CHECK(store.unfinished_runs().empty());
    store.commit(creating({new_run("c", 3000), new_run("a", 1000), new_run("b", 2000),
                           new_run("b2", 2000)}));
    finish_run(store, "a", RunStatus::cancelled);

    CHECK(store.unfinished_runs() == std::vector<loom::RunId>{"b", "b2", "c"});
}

// ---- ownership: claims, leases and fencing -----------------------------------

namespace {

loom::RunInfo owned_run(const std::string& id, std::int64_t created_ms, const std::string& owner,
                        std::int64_t lease_ms, const std::string& workflow_name = "etl") {
    loom::RunInfo run = new_run(id, created_ms, workflow_name);
    run.owner = owner;
    run.lease_until = at(lease_ms);
    return run;
}

loom::ClaimRequest claim_by(const std::string& owner, std::int64_t now_ms, std::int64_t until_ms) {
    loom::ClaimRequest request;
    request.owner = owner;
    request.now = at(now_ms);
    request.until = at(until_ms);
    return request;
}

loom::Batch fenced_write(const std::string& owner, const std::string& run_id, StepStatus status) {
    loom::Batch batch;
    batch.owner = owner;
    batch.fenced = {run_id, run_id};   // an id may repeat
    batch.steps.push_back(step_write(run_id, "extract", status));
    return batch;
}

}  // namespace

TEMPLATE_TEST_CASE("claim_runs takes free, expired and dead owners' runs, oldest first, once",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.save_workflow(workflow("report", 1));
    store.commit(creating({new_run("free", 5000),                         // never owned
                           owned_run("expired", 4000, "a", 10'000),       // lease over at 10 s
                           owned_run("live", 3000, "b", 60'000),          // b's lease lasts
                           owned_run("dead", 2000, "c", 60'000),          // c is known to be gone
                           owned_run("mine", 1000, "me", 60'000),         // already the claimer's
                           new_run("other", 500, "report")}));
    loom::Batch finish;
    finish.new_runs.push_back(new_run("finished", 100));
    finish.new_runs.back().status = RunStatus::completed;
    store.commit(finish);

    auto request = claim_by("me", 10'000, 40'000);
    request.dead_owners = {"c"};
    request.workflows = std::vector<std::pair<std::string, std::int64_t>>{{"etl", 1}};
    request.limit = 2;
    auto first = store.claim_runs(request);
    std::sort(first.begin(), first.end());
    CHECK(first == std::vector<loom::RunId>{"dead", "expired"});   // the oldest two
    request.limit = SIZE_MAX;
    CHECK(store.claim_runs(request) == std::vector<loom::RunId>{"free"});
    CHECK(store.claim_runs(request).empty());   // nothing claimed twice

    auto run = store.load_run("expired");
    REQUIRE(run);
    CHECK(run->owner == "me");
    CHECK(run->lease_until == at(40'000));
    CHECK(store.load_run("live")->owner == "b");
    CHECK(store.load_run("other")->owner.empty());   // not a workflow "me" runs

    // Another claimer gets none of them while "me"'s lease lasts; "live" once b's ends.
    CHECK(store.claim_runs(claim_by("d", 39'999, 90'000)) == std::vector<loom::RunId>{"other"});
    CHECK(store.renew_leases("me", {"dead", "expired", "free", "mine"}, at(90'000)).empty());
    CHECK(store.claim_runs(claim_by("d", 60'000, 90'000)) == std::vector<loom::RunId>{"live"});

    std::vector<std::string> owners = store.run_owners();
    std::sort(owners.begin(), owners.end());
    CHECK(owners == std::vector<std::string>{"d", "me"});
}

TEMPLATE_TEST_CASE("claim_runs leaves runs never claimed when told to, and takes released ones",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    // Recovery and adoption leave enqueued runs to the queue's claims.
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({new_run("enqueued", 3000), owned_run("released", 2000, "a", 60'000),
                           owned_run("expired", 1000, "b", 5'000)}));
    store.release_runs("a", {"released"});
    auto request = claim_by("me", 10'000, 40'000);
    request.enqueued = false;
    auto taken = store.claim_runs(request);
    std::sort(taken.begin(), taken.end());
    CHECK(taken == std::vector<loom::RunId>{"expired", "released"});
    CHECK(store.load_run("enqueued")->owner.empty());
    request.enqueued = true;
    CHECK(store.claim_runs(request) == std::vector<loom::RunId>{"enqueued"});
}

TEMPLATE_TEST_CASE("renew_leases extends what the owner holds and names what it lost",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({owned_run("kept", 1000, "me", 10'000), owned_run("taken", 2000, "other", 10'000),
                           owned_run("done", 3000, "me", 10'000)}));
    finish_run(store, "done", RunStatus::completed);
    CHECK(store.load_run("done")->owner.empty());   // a final run has no owner
    CHECK_FALSE(store.load_run("done")->lease_until);

    auto lost = store.renew_leases("me", {"kept", "taken", "done", "unknown"}, at(20'000));
    std::sort(lost.begin(), lost.end());
    CHECK(lost == std::vector<loom::RunId>{"done", "taken", "unknown"});
    CHECK(store.load_run("kept")->lease_until == at(20'000));
    CHECK(store.load_run("taken")->lease_until == at(10'000));
}

TEMPLATE_TEST_CASE("release_runs frees the owner's runs for anyone at once", "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({owned_run("a", 1000, "me", 60'000), owned_run("b", 2000, "other", 60'000)}));
    const auto before = std::chrono::system_clock::now() - 1ms;
    store.release_runs("me", {"a", "b", "unknown"});   // b is not "me"'s: left alone
    CHECK(store.load_run("a")->owner.empty());
    // When it was released: a reader tells a run changing hands from one never claimed.
    REQUIRE(store.load_run("a")->lease_until);
    CHECK(*store.load_run("a")->lease_until >= before);
    CHECK(*store.load_run("a")->lease_until <= std::chrono::system_clock::now());
    CHECK(store.load_run("b")->owner == "other");
    CHECK(store.claim_runs(claim_by("next", 1000, 60'000)) == std::vector<loom::RunId>{"a"});
}

TEMPLATE_TEST_CASE("a fenced commit is refused whole for a run its writer does not own",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({owned_run("r", 1000, "a", 10'000)}));
    store.commit(fenced_write("a", "r", StepStatus::running));   // the owner writes

    REQUIRE(store.claim_runs(claim_by("b", 10'000, 20'000)) == std::vector<loom::RunId>{"r"});
    // a lost the lease: its next commit changes nothing, a new run in it included.
    loom::Batch late = fenced_write("a", "r", StepStatus::completed);
    late.new_runs.push_back(owned_run("child", 2000, "a", 20'000));
    late.fenced.push_back("child");
    try {
        store.commit(late);
        FAIL("the commit of an executor that lost the run went through");
    } catch (const loom::Conflict& e) {
        CHECK(e.id() == std::string(loom::error_id::store_not_owner));
        CHECK_THAT(e.what(), Catch::Contains("run r") && Catch::Contains("executor a") &&
                                 Catch::Contains("executor b does"));
    }
    CHECK(store.load_run("r")->step("extract")->status == StepStatus::running);
    CHECK_FALSE(store.load_run("child"));
    store.commit(fenced_write("b", "r", StepStatus::completed));   // the new owner may
    CHECK(store.load_run("r")->step("extract")->status == StepStatus::completed);

    // Unfenced writes (another process's cancel or signal) are not checked.
    loom::Batch control;
    control.events.push_back(loom::RunEvent{0, "r", "", loom::event::run_cancel_requested, 0, "", at(3000)});
    store.commit(control);
}

TEMPLATE_TEST_CASE("a write that reopens a final run hands it to the batch's owner",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({owned_run("r", 1000, "a", 10'000), owned_run("busy", 1000, "a", 10'000)}));
    finish_run(store, "r", RunStatus::failed);

    auto reopen = [](const std::string& id) {
        loom::Batch batch;
        batch.owner = "b";
        batch.fenced = {id};
        loom::RunWrite write;
        write.run_id = id;
        write.status = RunStatus::running;
        write.take_lease = at(50'000);
        batch.runs.push_back(write);
        return batch;
    };
    store.commit(reopen("r"));
    auto run = store.load_run("r");
    CHECK(run->status == RunStatus::running);
    CHECK(run->owner == "b");
    CHECK(run->lease_until == at(50'000));
    // A running run is not taken over this way: a's lease on it stands.
    CHECK_THROWS_AS(store.commit(reopen("busy")), loom::Conflict);
    CHECK(store.load_run("busy")->owner == "a");
}

TEMPLATE_TEST_CASE("a RunControl writes only its fields and its run's owner finds it once",
                   "[store][ownership]", LOOM_STORE_FIXTURES) {
    TestType fixture;
    loom::Store& store = fixture.store;
    store.save_workflow(workflow("etl", 1));
    store.commit(creating({owned_run("r", 1000, "a", 60'000), owned_run("s", 2000, "a", 60'000),
                           owned_run("t", 3000, "b", 60'000)}));
    std::int64_t mark = 0;
    CHECK(store.controlled_runs("a", mark).empty());

    auto control = [&](const std::string& id, std::optional<bool> cancel, std::optional<bool> paused) {
        loom::Batch batch;
        batch.controls.push_back(loom::RunControl{id, cancel, paused});
        batch.events.push_back(loom::RunEvent{0, id, "", loom::event::run_paused, 0, "", at(4000)});
        store.commit(batch);
    };
    control("r", std::nullopt, true);   // pause r
    control("t", true, std::nullopt);   // cancel t (b's)
    CHECK(store.controlled_runs("a", mark) == std::vector<loom::RunId>{"r"});
    CHECK(store.controlled_runs("a", mark).empty());   // found once
    CHECK(store.controlled_runs("b", mark).empty());   // the mark is per caller: b passes its own
    std::int64_t b_mark = 0;
    CHECK(store.controlled_runs("b", b_mark) == std::vector<loom::RunId>{"t"});

    auto r = store.load_run("r");
    CHECK(r->paused);
    CHECK_FALSE(r->cancel_requested);   // an unset field is left as it was
    control("r", true, std::nullopt);
    r = store.load_run("r");
    CHECK(r->paused);
    CHECK(r->cancel_requested);
    CHECK(store.controlled_runs("a", mark) == std::vector<loom::RunId>{"r"});

    // A final run is left as it is; an unknown one is an error.
    finish_run(store, "s", RunStatus::completed);
    control("s", true, true);
    CHECK_FALSE(store.load_run("s")->cancel_requested);
    CHECK(store.controlled_runs("a", mark).empty());
    loom::Batch unknown;
    unknown.controls.push_back(loom::RunControl{"nope", true, std::nullopt});
    CHECK_THROWS_AS(store.commit(unknown), loom::StoreError);
}
