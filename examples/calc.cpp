// calc: the README's example, verbatim between the snippet marks (docs.snippets
// checks that): two steps on SQLite, each doubling a number, recovered and
// waited for. Runs in its own directory, so runs.db collects a run per ctest run.
#include <iostream>

// snippet begin: readme
#include <loom/loom.hpp>

// snippet end: readme
int main() {
    // snippet begin: readme
    loom::HandlerRegistry handlers;
    handlers.add("double", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("value") * 2;                  // throw to fail the attempt
    });

    loom::Workflow wf = loom::WorkflowBuilder("calc", 1)
        .step("a", "double").input({{"value", "${input.x}"}})
        .step("b", "double").input({{"value", "${steps.a.output}"}}).after("a")
        .build();                                            // validates; throws loom::DefinitionError

    loom::SqliteStore store("runs.db");                      // or loom::MemoryStore
    loom::Executor executor(store, handlers, {/*threads=*/4});
    executor.recover();                                      // resume what a crash left unfinished
    executor.add_workflow(wf);                               // persisted, versioned by (name, version)
    loom::RunId id = executor.start("calc", {{"x", 5}});     // durable before it returns
    loom::RunInfo run = executor.wait(id);                   // run.output == {"b": 20}
    // snippet end: readme

    std::cout << "run " << run.id << " " << loom::to_string(run.status) << ": " << run.output.dump() << "\n";
    return run.status == loom::RunStatus::completed && run.output == loom::Json{{"b", 20}} ? 0 : 1;
}
