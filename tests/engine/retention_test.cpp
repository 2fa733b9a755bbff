// Operating a store: handler log lines stored with their run (bounded per
// attempt), and retention deleting finished runs with all they own.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include <loom/loom.hpp>

#include "support/fixture.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::RunStatus;
using loom::test::Fixture;
using loom::test::Storage;

namespace {

struct Chatty : loom::test::Steps {
    Chatty() {
        handlers.add("talk", [](loom::StepContext& ctx) -> Json {
            const int lines = ctx.input_or("lines", 1);
            for (int i = 1; i <= lines; ++i) ctx.log("line " + std::to_string(i));
            if (ctx.input_or("long", false)) ctx.log(loom::LogLevel::warn, std::string(5000, 'x') + "\xC3\xA9");
            return nullptr;
        });
        handlers.add("each", [](loom::StepContext& ctx) -> Json {
            ctx.log(loom::LogLevel::debug, "element " + ctx.input<Json>("value").dump());
            return nullptr;
        });
        handlers.add("held", [this](loom::StepContext& ctx) -> Json {
            ctx.log("before the gate");
            gate.pass();
            return nullptr;
        });
    }
    static loom::Workflow talk() {
        return loom::WorkflowBuilder("talk", 1)
            .step("first", "talk").input({{"lines", "${input.lines}"}, {"long", "${input.long}"}})
            .step("second", "talk").after("first")
            .step("fan", "each").for_each("${input.list}").input({{"value", "${item}"}}).after("second")
            .build();
    }
    static loom::Workflow child() { return loom::WorkflowBuilder("child", 1).step("only", "talk").build(); }
    static loom::Workflow parent() {
        return loom::WorkflowBuilder("parent", 1)
            .step("sub", "workflow:child")
            .step("last", "held").after("sub")
            .build();
    }
};

Json talk_input(int lines, bool long_line = false) {
    return {{"lines", lines}, {"long", long_line}, {"list", {1, 2}}};
}

}  // namespace

TEST_CASE("handler log lines are stored with run, step, element and attempt", "[engine][logs]") {
    const auto storage = GENERATE(Storage::memory, Storage::sqlite);
    Fixture<Chatty> f(storage);
    auto& executor = f.open({Chatty::talk()});
    const auto before = std::chrono::system_clock::now() - 1s;
    const auto id = executor.start("talk", talk_input(2));
    REQUIRE(executor.wait(id).status == RunStatus::completed);

    const auto all = executor.logs(id);
    REQUIRE(all.size() == 5);
    CHECK(all[0].step_id == "first");
    CHECK(all[0].message == "line 1");
    CHECK(all[0].level == loom::LogLevel::info);
    CHECK(all[0].attempt == 1);
    CHECK(all[0].run_id == id);
    CHECK(all[0].at >= before);
    CHECK(all[1].message == "line 2");
    CHECK(all[2].step_id == "second");
    const auto fan = executor.logs(id, "fan");
    REQUIRE(fan.size() == 2);
    for (const auto& line : fan) {
        REQUIRE(line.item);
        CHECK(line.level == loom::LogLevel::debug);
        CHECK(line.message == "element " + std::to_string(*line.item + 1));
    }
    CHECK_THROWS_AS(executor.logs("no-such-run"), loom::NotFound);
    if (storage == Storage::sqlite) {   // durable: a restart reads them back
        auto& again = f.reopen();
        CHECK(again.logs(id).size() == 5);
    }
}

TEST_CASE("a handler's log lines are stored while it still runs", "[engine][logs]") {
    // No commit of the run's own comes until the handler returns: the lines
    // must get to the store by the flush that unwritten starts use.
    Fixture<Chatty> f(Storage::sqlite);
    auto& executor = f.open({loom::WorkflowBuilder("hold", 1).step("wait", "held").build()});
    const auto id = executor.start("hold", Json::object());
    f.gate.wait_for_waiters(1);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (f.store().load_logs(id).empty() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    const auto lines = f.store().load_logs(id);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].message == "before the gate");
    CHECK(executor.get_run(id).status == RunStatus::running);   // the handler is still at the gate
    f.gate.release();
    CHECK(executor.wait(id).status == RunStatus::completed);
}

TEST_CASE("an attempt stores at most kMaxStoredLogLines lines, each cut to kMaxStoredLogBytes", "[engine][logs]") {
    Fixture<Chatty> f(Storage::sqlite);
    auto& executor = f.open({Chatty::talk()});
    const auto id = executor.start("talk", talk_input(loom::kMaxStoredLogLines + 50, true));
    REQUIRE(executor.wait(id).status == RunStatus::completed);
    const auto first = executor.logs(id, "first");
    REQUIRE(first.size() == static_cast<std::size_t>(loom::kMaxStoredLogLines) + 1);
    CHECK(first[loom::kMaxStoredLogLines - 1].message == "line " + std::to_string(loom::kMaxStoredLogLines));
    CHECK(first.back().level == loom::LogLevel::warn);
    CHECK(first.back().message == "this attempt logged more than 100 lines; the rest are not stored");

    // The long line of an attempt under the limit: cut on a character boundary.
    const auto second = executor.start("talk", talk_input(1, true));
    REQUIRE(executor.wait(second).status == RunStatus::completed);
    const auto lines = executor.logs(second, "first");
    REQUIRE(lines.size() == 2);
    CHECK(lines[1].message.size() <= loom::kMaxStoredLogBytes);
    CHECK(lines[1].message == std::string(loom::kMaxStoredLogBytes - 3, 'x') + "\xE2\x80\xA6");
}

TEST_CASE("purge() deletes finished runs, keeping unfinished ones and children an unfinished parent reads",
          "[engine][retention]") {
    const auto storage = GENERATE(Storage::memory, Storage::sqlite);
    Fixture<Chatty> f(storage);
    auto& executor = f.open({Chatty::talk(), Chatty::child(), Chatty::parent()});
    std::vector<loom::RunId> done;
    for (int i = 0; i < 3; ++i) done.push_back(executor.start("talk", talk_input(1)));
    for (const auto& id : done) REQUIRE(executor.wait(id).status == RunStatus::completed);
    const auto parent = executor.start("parent", Json::object());
    f.gate.wait_for_waiters(1);   // "last" runs: the child is final, its parent is not
    REQUIRE(executor.get_run(parent + ".sub").status == RunStatus::completed);

    const auto later = std::chrono::system_clock::now() + 1h;
    CHECK(executor.purge(std::chrono::system_clock::now() - 1h) == 0);   // nothing that old
    CHECK(executor.purge(later) == 3);
    for (const auto& id : done) {
        CHECK_THROWS_AS(executor.get_run(id), loom::NotFound);
        CHECK(f.store().load_events(id).empty());
        CHECK(f.store().load_logs(id).empty());
    }
    CHECK(executor.get_run(parent + ".sub").status == RunStatus::completed);   // its parent still reads it
    f.gate.release();
    REQUIRE(executor.wait(parent).status == RunStatus::completed);
    CHECK(executor.purge(later) == 2);
    CHECK(executor.list_runs().empty());
}

TEST_CASE("ExecutorOptions::retention purges finished runs in the background", "[engine][retention]") {
    Fixture<Chatty> f(Storage::sqlite);
    loom::ExecutorOptions options{2};
    options.retention = 1ms;
    options.retention_every = 5ms;
    auto& executor = f.open({Chatty::talk()}, options);
    const auto id = executor.start("talk", talk_input(1));
    REQUIRE(executor.wait(id).status == RunStatus::completed);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!executor.list_runs().empty() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    CHECK(executor.list_runs().empty());

    loom::ExecutorOptions bad{2};
    bad.retention = 0ms;
    CHECK_THROWS_WITH(loom::Executor(f.store(), f.handlers, bad), Catch::Contains("[loom.options.duration]") &&
                                                                    Catch::Contains("retention"));
}
