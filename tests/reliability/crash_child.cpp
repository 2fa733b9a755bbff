// The process test_crash kills. It runs (or recovers) one parallel workflow on
// SQLite; every handler appends "unit attempt pid" to an fsynced ledger first
// (the unit is the step, or "fan[3]" for an element of a for_each: see
// crash_unit()), then fails or succeeds as crash_attempt() says.
// It SIGKILLs itself after the N-th append when LOOM_CRASH_AFTER=N, or at the
// N-th executor failpoint when LOOM_FAILPOINT=NAME:N ("*" counts them all).
// On a clean exit it prints "failpoint hits N". LOOM_CRASH_THREADS sets the
// executor's threads (default 4; 1 makes the order of failpoints repeatable).
// tests/support/crash_child.hpp reads them and keeps the ledger.
//
//   loom_crash_child run DB LEDGER       add the workflow, start one run, wait
//   loom_crash_child recover DB LEDGER   recover() and wait for every run
//   loom_crash_child poison DB LEDGER    start the poison workflow (poison_workflow()),
//                                        whose "poison" handler SIGKILLs the process
#include <csignal>
#include <iostream>
#include <string>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/crash_child.hpp"

namespace crash = loom::test::crash;

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: loom_crash_child run|recover|poison DB LEDGER\n";
        return 2;
    }
    const std::string mode = argv[1];
    if (!crash::start_child(argv[3])) return 3;

    loom::SqliteStore store(argv[2]);
    loom::HandlerRegistry handlers;
    handlers.add("work", [](loom::StepContext& ctx) -> loom::Json {
        const std::string unit = loom::test::crash_unit(ctx.step_id(), ctx.item_index());
        crash::append_ledger(unit, ctx.attempt());
        crash::jitter();
        switch (loom::test::crash_attempt(unit, ctx.attempt())) {
            case loom::test::CrashAttempt::fails_retryable:
                throw loom::RetryableError("attempt " + std::to_string(ctx.attempt()) + " fails by design");
            case loom::test::CrashAttempt::fails_fatal:
                throw loom::FatalError("fails by design");
            case loom::test::CrashAttempt::succeeds:
                break;
        }
        return loom::test::crash_step_output(unit, ctx.input());
    });
    handlers.add("poison", [](loom::StepContext& ctx) -> loom::Json {
        const std::string unit = loom::test::crash_unit(ctx.step_id(), ctx.item_index());
        crash::append_ledger(unit, ctx.attempt());
        if (!ctx.item_index() || *ctx.item_index() == loom::test::kPoisonItem) std::raise(SIGKILL);
        return loom::test::crash_step_output(unit, ctx.input());
    });
    try {
        int code = 0;
        {
            loom::Executor executor(store, handlers, {crash::child_threads(4)});
            if (mode == "poison") {
                executor.add_workflow(loom::test::poison_workflow());
                auto id = executor.start("poison", {{"seed", 7}, {"list", {10, 11, 12}}});
                code = executor.wait(id).status == loom::RunStatus::completed ? 0 : 1;
            } else if (mode == "run") {
                executor.add_workflow(loom::test::crash_workflow());
                auto id = executor.start("crash", {{"seed", 7}});
                code = executor.wait(id).status == loom::RunStatus::completed ? 0 : 1;
            } else {
                for (const auto& id : executor.recover())
                    if (executor.wait(id).status != loom::RunStatus::completed) code = 1;
            }
        }
        crash::print_failpoint_hits();
        return code;
    } catch (const std::exception& e) {
        std::cerr << "crash child: " << e.what() << "\n";
        return 4;
    }
}
