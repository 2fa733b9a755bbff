// run.hpp: the names of run and step statuses, and how they print.
#include <catch2/catch.hpp>

#include <sstream>

#include <loom/run.hpp>

TEST_CASE("statuses print as their names, so a failed CHECK says \"failed == completed\"", "[model][run]") {
    CHECK(Catch::Detail::stringify(loom::RunStatus::failed) == "failed");
    CHECK(Catch::Detail::stringify(loom::StepStatus::compensated) == "compensated");
    std::ostringstream out;
    out << loom::RunStatus::cancelled << ' ' << loom::StepStatus::skipped;
    CHECK(out.str() == "cancelled skipped");
    for (auto status : {loom::StepStatus::pending, loom::StepStatus::ready, loom::StepStatus::running,
                        loom::StepStatus::waiting, loom::StepStatus::suspended, loom::StepStatus::completed,
                        loom::StepStatus::failed, loom::StepStatus::skipped, loom::StepStatus::compensating,
                        loom::StepStatus::compensated, loom::StepStatus::cancelled})
    {
        CHECK(Catch::Detail::stringify(status) == loom::to_string(status));
        CHECK(loom::parse_step_status(loom::to_string(status)) == status);
    }
}
