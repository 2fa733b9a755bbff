// The process test_crash_saga kills. It runs (or resumes) the runs of
// crash_saga_workflow.hpp on SQLite: recover(), then start "saga" and "flow"
// with idempotency keys (so a process killed before or between the starts is
// followed by one that starts what is missing, and never starts twice), and
// waits for all of them. Every handler appends "step attempt pid" to an
// fsynced ledger first — a compensation "undo:step attempt pid"; the notify
// handler then signals its own run through this process's executor.
// LOOM_CRASH_AFTER, LOOM_FAILPOINT and LOOM_CRASH_THREADS as for
// loom_crash_child. On a clean exit it prints "failpoint hits N".
//
//   loom_crash_saga_child DB LEDGER
//
// With LOOM_CRASH_MODE=deadlock it instead reproduces a known executor hang
// (see the [!mayfail] case of test_crash_saga): exit 0 if it does not happen.
#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <loom/loom.hpp>

#include "crash_saga_workflow.hpp"
#include "support/crash_child.hpp"

namespace crash = loom::test::crash;

namespace {

loom::Executor* executor_ptr = nullptr;   // for the notify handler

/// One pool thread; a handler calls Executor::signal on its own run while
/// the host thread starts another run, so the host leads a commit round as
/// the handler waits for its signal's commit. Hangs on the bug.
int deadlock(const std::string& db) {
    loom::SqliteStore store(db);
    loom::HandlerRegistry handlers;
    std::atomic<bool> go{false};
    handlers.add("caller", [&](loom::StepContext& ctx) -> loom::Json {
        while (!go.load()) std::this_thread::yield();
        executor_ptr->signal(ctx.run_id(), "x", 1);
        return 1;
    });
    handlers.add("noop", [](loom::StepContext&) -> loom::Json { return 1; });
    loom::Executor executor(store, handlers, {1});
    executor_ptr = &executor;
    executor.add_workflow(
        loom::WorkflowBuilder("a", 1).step("caller", "caller").step("w", "wait").input({{"signal", "x"}}).build());
    executor.add_workflow(loom::WorkflowBuilder("b", 1).step("n", "noop").build());
    const auto a = executor.start("a");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));   // caller is in its handler
    go = true;
    const auto b = executor.start("b");
    const bool ok = executor.wait(a).status == loom::RunStatus::completed &&
                    executor.wait(b).status == loom::RunStatus::completed;
    executor_ptr = nullptr;
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: loom_crash_saga_child DB LEDGER\n";
        return 2;
    }
    if (const char* mode = std::getenv("LOOM_CRASH_MODE"); mode && std::string(mode) == "deadlock") {
        try {
            return deadlock(argv[1]);
        } catch (const std::exception& e) {
            std::cerr << "crash saga child: " << e.what() << "\n";
            return 4;
        }
    }
    if (!crash::start_child(argv[2])) return 3;

    loom::SqliteStore store(argv[1]);
    loom::HandlerRegistry handlers;
    handlers.add("work", [](loom::StepContext& ctx) -> loom::Json {
        crash::append_ledger(ctx.step_id(), ctx.attempt());
        crash::jitter();
        if (ctx.step_id() == loom::test::kSagaFails) throw loom::FatalError("fails by design");
        return loom::test::saga_step_output(ctx.step_id(), ctx.input());
    });
    handlers.add("undo", [](loom::StepContext& ctx) -> loom::Json {
        crash::append_ledger(loom::test::kSagaUndo + ctx.step_id(), ctx.attempt());
        crash::jitter();
        return nullptr;
    });
    handlers.add("notify", [](loom::StepContext& ctx) -> loom::Json {
        crash::append_ledger(ctx.step_id(), ctx.attempt());
        crash::jitter();
        executor_ptr->signal(ctx.run_id(), loom::test::kSagaSignal, loom::test::saga_signal_payload(ctx.input()));
        return loom::test::saga_step_output(ctx.step_id(), ctx.input());
    });
    try {
        int code = 0;
        {
            loom::Executor executor(store, handlers, {crash::child_threads(2)});
            executor_ptr = &executor;
            for (const auto& wf : loom::test::saga_workflows()) executor.add_workflow(wf);
            auto ids = executor.recover();
            loom::StartOptions saga, flow;
            saga.idempotency_key = "saga";
            flow.idempotency_key = "flow";
            const auto saga_id = executor.start("saga", {{"seed", 7}}, saga);
            const auto flow_id = executor.start("flow", {{"seed", 11}}, flow);
            for (const auto& id : ids) executor.wait(id);
            if (executor.wait(saga_id).status != loom::RunStatus::failed) code = 1;
            if (executor.wait(flow_id).status != loom::RunStatus::completed) code = 1;
            executor_ptr = nullptr;
        }
        crash::print_failpoint_hits();
        return code;
    } catch (const std::exception& e) {
        std::cerr << "crash saga child: " << e.what() << "\n";
        return 4;
    }
}
