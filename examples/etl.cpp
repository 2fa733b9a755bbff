// etl: a parallel extract-transform-load with custom handlers (StepHandler
// subclasses) passing data between steps. Two transforms run side by side on
// the extracted rows; the load step receives both outputs by step id.
#include <iostream>
#include <numeric>

#include <loom/loom.hpp>

namespace {

/// Produces rows; a real one would read a file or an API.
class Extract : public loom::StepHandler {
public:
    loom::Json run(loom::StepContext& ctx) override {
        loom::Json rows = loom::Json::array();
        for (int i = 1; i <= ctx.input<int>("rows"); ++i)
            rows.push_back({{"id", i}, {"amount", i * 10}});
        ctx.log("extracted " + std::to_string(rows.size()) + " rows");
        return rows;
    }
};

/// Keeps the rows at or above a threshold.
class Filter : public loom::StepHandler {
public:
    loom::Json run(loom::StepContext& ctx) override {
        const int min = ctx.input<int>("min");
        loom::Json kept = loom::Json::array();
        for (const auto& row : ctx.input<loom::Json>("rows"))
            if (row.at("amount").get<int>() >= min) kept.push_back(row);
        return kept;
    }
};

/// Totals the amounts.
class Total : public loom::StepHandler {
public:
    loom::Json run(loom::StepContext& ctx) override {
        int sum = 0;
        for (const auto& row : ctx.input<loom::Json>("rows")) sum += row.at("amount").get<int>();
        return sum;
    }
};

/// Receives {"filter": [...], "total": N}: the outputs of its dependencies.
class Load : public loom::StepHandler {
public:
    loom::Json run(loom::StepContext& ctx) override {
        return {{"loaded", ctx.input<loom::Json>("filter").size()}, {"total", ctx.input<int>("total")}};
    }
};

}  // namespace

int main() {
    loom::HandlerRegistry handlers;
    handlers.add("extract", std::make_shared<Extract>());
    handlers.add("filter", std::make_shared<Filter>());
    handlers.add("total", std::make_shared<Total>());
    handlers.add("load", std::make_shared<Load>());

    auto etl = loom::WorkflowBuilder("etl", 1)
        .step("extract", "extract").input({{"rows", "${input.rows}"}})
        .step("filter", "filter").input({{"rows", "${steps.extract.output}"}, {"min", "${input.min}"}})
            .after("extract")
        .step("total", "total").input({{"rows", "${steps.extract.output}"}}).after("extract")
        .step("load", "load").after({"filter", "total"})
        .build();

    loom::MemoryStore store;
    loom::LogObserver log(std::cout);
    loom::ExecutorOptions options;
    options.threads = 2;
    options.observer = &log;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(etl);
    auto run = executor.wait(executor.start("etl", {{"rows", 5}, {"min", 30}}));

    std::cout << "result: " << run.output.dump() << "\n";
    const loom::Json expected = {{"load", {{"loaded", 3}, {"total", 150}}}};
    return run.status == loom::RunStatus::completed && run.output == expected ? 0 : 1;
}
