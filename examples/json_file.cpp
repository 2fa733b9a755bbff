// json_file: a workflow written as a JSON file, loaded with Workflow::from_file
// and checked against the registered handlers before anything runs. The report
// is published if it can be; either way the last step is told how that went
// (${steps.publish.status} and ${steps.publish.error} in its input).
//
//     json_file [path/to/report.json]     (default: the one next to this file)
#include <iostream>

#include <loom/loom.hpp>

#ifndef LOOM_EXAMPLES_DIR
#define LOOM_EXAMPLES_DIR "examples"
#endif

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : LOOM_EXAMPLES_DIR "/workflows/report.json";

    loom::HandlerRegistry handlers;
    handlers.add("orders.fetch", [](loom::StepContext&) -> loom::Json {
        return loom::Json::array({{{"id", 1}, {"amount", 30}}, {{"id", 2}, {"amount", 12}}});
    });
    handlers.add("orders.total", [](loom::StepContext& ctx) -> loom::Json {
        int total = 0;
        for (const auto& order : ctx.input<loom::Json>("orders")) total += order.at("amount").get<int>();
        return total;
    });
    handlers.add("report.publish", [](loom::StepContext&) -> loom::Json {
        throw loom::FatalError("the report server refused the upload");   // retrying will not help
    });
    handlers.add("report.notify", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<std::string>("published") == "completed"
                   ? "report published"
                   : "report not published: " + ctx.input<std::string>("why");
    });

    try {
        // snippet begin: load
        // Errors name the file: "[loom.definition.unknown_key] report.json: /steps/2/retyr: ...".
        loom::Workflow workflow = loom::Workflow::from_file(path);
        loom::MemoryStore store;
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(workflow);
        executor.check(workflow);   // a handler-name typo in the file fails here, not in a run
        // snippet end: load
        loom::RunInfo run = executor.wait(executor.start(workflow.name(), {{"day", "2026-03-01"}}));

        std::cout << "run " << run.id << " " << loom::to_string(run.status) << ": " << run.output.dump() << "\n";
        return run.status == loom::RunStatus::completed &&
                       run.output == loom::Json{{"notify", "report not published: the report server "
                                                           "refused the upload"}}
                   ? 0
                   : 1;
    } catch (const loom::Error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
