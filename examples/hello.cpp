// hello: the smallest Loom program. Three steps in a chain, each adding to the
// previous step's output, run in memory.
#include <iostream>

#include <loom/loom.hpp>

int main() {
    loom::HandlerRegistry handlers;
    handlers.add("add", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("value") + ctx.input<int>("plus");
    });

    auto workflow = loom::WorkflowBuilder("hello", 1)
        .step("first", "add").input({{"value", "${input.start}"}, {"plus", 1}})
        .step("second", "add").input({{"value", "${steps.first.output}"}, {"plus", 10}}).after("first")
        .step("third", "add").input({{"value", "${steps.second.output}"}, {"plus", 100}}).after("second")
        .build();

    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(workflow);
    loom::RunInfo run = executor.wait(executor.start("hello", {{"start", 1}}));

    std::cout << "run " << run.id << " " << loom::to_string(run.status) << ": " << run.output.dump() << "\n";
    return run.status == loom::RunStatus::completed && run.output == loom::Json{{"third", 112}} ? 0 : 1;
}
