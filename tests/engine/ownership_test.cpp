// Ownership inside one process: executors on one store, leases on a short
// clock, a store that fails. (Separate processes: reliability/processes_test.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <loom/loom.hpp>

#include "engine/lease_keeper.hpp"
#include "runtime/identity.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;

namespace {

loom::Workflow two_steps() {
    return loom::WorkflowBuilder("owned", 1).step("a", "h").step("b", "h").after("a").build();
}

loom::TimePoint epoch_now() {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

/// Records an unfinished run of two_steps() as `owner` left it, its lease
/// ending at `lease_until`.
loom::RunId plant_run(loom::Store& store, const std::string& id, const std::string& owner,
                      std::optional<loom::TimePoint> lease_until) {
    const auto wf = two_steps();
    loom::RunInfo info;
    info.id = id;
    info.workflow_name = wf.name();
    info.workflow_version = wf.version();
    info.workflow_hash = wf.hash();
    info.created_at = info.updated_at = epoch_now();
    info.owner = owner;
    info.lease_until = lease_until;
    for (const char* s : {"a", "b"}) info.steps.emplace_back().step_id = s;
    info.steps[0].status = loom::StepStatus::ready;
    loom::Batch batch;
    batch.new_runs.push_back(info);
    store.commit(batch);
    return id;
}

/// Fails the first `failures` claims with StoreError: a store down while an
/// executor tries to adopt.
class FailingClaims : public loom::StoreWrapper {
public:
    FailingClaims(loom::Store& target, int failures) : StoreWrapper(target), failures_(failures) {}
    std::vector<loom::RunId> claim_runs(const loom::ClaimRequest& request) override {
        ++claims;
        if (failures_-- > 0) throw loom::StoreError("loom.store.io", "the store is down (injected)");
        return StoreWrapper::claim_runs(request);
    }
    std::atomic<int> claims{0};

private:
    std::atomic<int> failures_;
};

/// A MemoryStore, handlers for two_steps() and options for two threads.
struct OneStore {
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::ExecutorOptions options;
    OneStore() {
        handlers.add("h", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
        options.threads = 2;
    }
};

struct Logs : loom::Observer {
    std::mutex mutex;
    std::vector<std::string> lines;
    void on_log(const loom::LogRecord& r) override {
        std::lock_guard lock(mutex);
        lines.push_back(r.message);
    }
    bool said(const std::string& part) {
        std::lock_guard lock(mutex);
        for (const auto& l : lines)
            if (l.find(part) != std::string::npos) return true;
        return false;
    }
};

}  // namespace

TEST_CASE("adoption tries again after the store failed, so a dead owner's run is not stranded",
          "[engine][ownership]") {
    // DBOS #716: a database restart during recovery left workflows pending for good.
    loom::MemoryStore memory;
    FailingClaims store(memory, 2);
    loom::HandlerRegistry handlers;
    handlers.add("h", [](loom::StepContext& ctx) -> Json { return ctx.step_id(); });
    Logs logs;
    loom::ExecutorOptions options;
    options.threads = 2;
    options.lease = 40ms;   // adoption every 20 ms
    options.observer = &logs;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(two_steps());
    const auto id = plant_run(memory, "orphan", "worker-on-a-dead-host", epoch_now() - 1s);

    REQUIRE(loom::test::eventually([&] { return memory.load_run(id)->status == loom::RunStatus::completed; }));
    CHECK(store.claims >= 3);
    CHECK(logs.said("adopting runs failed; retrying"));
}

TEST_CASE("a run whose lease another executor holds is neither recovered nor adopted until it expires",
          "[engine][ownership]") {
    OneStore one;
    auto& store = one.store;
    auto& handlers = one.handlers;
    auto& options = one.options;
    options.lease = 40ms;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(two_steps());
    const auto id = plant_run(store, "held", "worker-elsewhere", epoch_now() + 300ms);
    CHECK(executor.recover().empty());
    std::this_thread::sleep_for(150ms);   // several adoption rounds
    CHECK(store.load_run(id)->owner == "worker-elsewhere");
    CHECK(store.load_run(id)->step("a")->status == loom::StepStatus::ready);
    // Once it expires, the next round takes it.
    REQUIRE(loom::test::eventually([&] { return store.load_run(id)->status == loom::RunStatus::completed; }));
}

TEST_CASE("a stopping executor adopts nothing and releases the runs it ran", "[engine][ownership]") {
    // DBOS #804: a draining executor claimed work and stranded it.
    loom::MemoryStore store;
    loom::HandlerRegistry handlers;
    loom::test::Gate gate;
    handlers.add("h", [&](loom::StepContext& ctx) -> Json {
        if (ctx.step_id() == "a") gate.pass();
        return ctx.step_id();
    });
    loom::ExecutorOptions options;
    options.threads = 2;
    options.lease = 20ms;   // adoption every 10 ms, if it adopted while stopping
    loom::RunId ran;
    {
        loom::Executor executor(store, handlers, options);
        executor.add_workflow(two_steps());
        ran = executor.start("owned");
        gate.wait_for_waiters(1);
        // While its destructor waits for "a": a run nobody holds appears.
        std::thread([&] {
            std::this_thread::sleep_for(60ms);
            plant_run(store, "orphan", "", std::nullopt);
            std::this_thread::sleep_for(60ms);
            gate.release();
        }).detach();
    }
    const auto orphan = store.load_run("orphan");
    REQUIRE(orphan);
    CHECK(orphan->owner.empty());   // not claimed while stopping
    const auto left = store.load_run(ran);
    CHECK(left->status == loom::RunStatus::running);
    CHECK(left->step("a")->status == loom::StepStatus::completed);
    CHECK(left->owner.empty());   // released: anyone may take it now

    loom::Executor next(store, handlers, options);
    REQUIRE(loom::test::eventually([&] {
        return store.load_run(ran)->status == loom::RunStatus::completed &&
               store.load_run("orphan")->status == loom::RunStatus::completed;
    }));
}

TEST_CASE("recover() leaves enqueued runs to the workers' claims, unless its executor makes none",
          "[engine][ownership]") {
    OneStore one;
    auto& store = one.store;
    auto& handlers = one.handlers;
    auto& options = one.options;
    loom::StartOptions enqueue;
    enqueue.enqueue = true;
    auto enqueue_runs = [&](loom::Executor& executor) {
        std::vector<loom::RunId> ids;
        for (int i = 0; i < 20; ++i) ids.push_back(executor.start("owned", {}, enqueue));
        return ids;
    };

    SECTION("a worker's recover() at start-up takes its orphans, not the backlog") {
        // Its background claims take max_claimed runs, which then hold: the
        // rest of the backlog waits while recover() runs.
        std::atomic<bool> open{false};
        loom::HandlerRegistry held;
        held.add("h", [&](loom::StepContext& ctx) -> Json {
            while (!open) std::this_thread::sleep_for(1ms);
            return ctx.step_id();
        });
        options.max_claimed = 4;
        loom::Executor worker(store, held, options);
        worker.add_workflow(two_steps());
        const auto queued = enqueue_runs(worker);
        std::this_thread::sleep_for(2ms);   // younger than the backlog: background claims take the backlog first
        // A run whose owner is long gone (a lease that ended at the epoch).
        const auto orphan = plant_run(store, "orphan", "gone-worker", loom::TimePoint{});
        CHECK(worker.recover() == std::vector<loom::RunId>{orphan});
        open = true;
        CHECK(worker.wait(orphan).status == loom::RunStatus::completed);
        for (const auto& id : queued) CHECK(worker.wait(id).status == loom::RunStatus::completed);
    }
    SECTION("without adoption, recover() takes enqueued runs too: nothing is stranded") {
        options.adopt = false;   // no background claims
        loom::Executor lone(store, handlers, options);
        lone.add_workflow(two_steps());
        auto queued = enqueue_runs(lone);
        std::this_thread::sleep_for(150ms);   // more than a control poll: nothing claims them
        for (const auto& id : queued) CHECK(store.load_run(id)->owner.empty());
        auto taken = lone.recover();
        std::sort(taken.begin(), taken.end());
        std::sort(queued.begin(), queued.end());
        CHECK(taken == queued);
        for (const auto& id : queued) CHECK(lone.wait(id).status == loom::RunStatus::completed);
    }
}

TEST_CASE("an identity names its process, and its death is seen on the same host", "[engine][ownership]") {
    const std::string mine = loom::detail::new_identity();
    CHECK(mine.rfind("loom/", 0) == 0);
    CHECK(mine.find("/" + std::to_string(::getpid()) + "/") != std::string::npos);
    CHECK(mine != loom::detail::new_identity());
    CHECK_FALSE(loom::detail::owner_gone(mine));   // live in this process
    loom::detail::identity_ended(mine);
    CHECK(loom::detail::owner_gone(mine));         // this process, no longer live

    // A process that has exited: a pid with another start time is a reused pid.
    std::string other = mine;
    other.replace(other.find("/" + std::to_string(::getpid()) + "/"), std::to_string(::getpid()).size() + 2,
                  "/999999999/");
    CHECK(loom::detail::owner_gone(other));
    // Another host, or a name a host chose: only its lease can tell.
    std::string elsewhere = mine;
    elsewhere.replace(5, elsewhere.find('/', 5) - 5, "some-other-host");
    CHECK_FALSE(loom::detail::owner_gone(elsewhere));
    CHECK_FALSE(loom::detail::owner_gone("orders-1"));
}

TEST_CASE("lease renewals go on while an adoption round takes long", "[engine][ownership]") {
    // An adoption waiting on a busy store must not let this executor's leases run out.
    std::atomic<int> renewals{0};
    std::atomic<bool> adopting{false};
    loom::detail::LeaseKeeper keeper("renewal-test", 90ms);   // renewals every 30 ms
    keeper.start(
        [&] {
            ++renewals;
            keeper.renewed(std::chrono::steady_clock::now());   // as the executor does when the store took it
        },
        [&] {
            adopting = true;
            std::this_thread::sleep_for(400ms);   // a slow round
        },
        [] {}, 10ms);
    REQUIRE(loom::test::eventually([&] { return adopting.load(); }));
    const int before = renewals;
    std::this_thread::sleep_for(200ms);   // inside the slow round
    CHECK(renewals - before >= 3);        // about 6 are due
    CHECK(keeper.holding());
    keeper.stop();
}
