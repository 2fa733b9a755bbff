// The workflows of the second crash scenario (test_crash_saga): the features
// the first one (crash_workflow.hpp) lacks.
//
//   "saga"  s1 -> {s2, s3} -> boom: every s* has the compensation "undo"; boom
//           always fails (FatalError) under on_error "compensate", so the run
//           ends failed with s3 and s2 undone before s1.
//   "flow"  notify, approve (a "wait" step for the signal "go", which the
//           notify handler sends to its own run) and pay (a sub-workflow step
//           running "sub": c1 -> c2), joined by ship.
//
// Step ids are unique across the three workflows, so the checker keys
// everything by step id. Outputs depend on inputs, so a lost or wrong result
// changes the final runs.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace loom::test {

constexpr const char* kSagaFails = "boom";         // fails for good under "compensate"
constexpr const char* kSagaSignal = "go";           // what approve waits for, notify sends
constexpr const char* kSagaUndo = "undo:";          // ledger prefix of a compensation call

/// Every step's budget: an attempt in flight at a kill counts as one, and
/// no trial kills a step this often, so the runs end as uncrashed ones do.
inline RetryPolicy saga_crash_budget() {
    RetryPolicy retry;
    retry.max_attempts = 64;
    retry.initial_backoff = std::chrono::milliseconds(1);
    return retry;
}

/// The compensable steps of "saga", each with the compensable steps downstream
/// of it, whose undos must finish before its own starts.
inline const std::map<std::string, std::vector<std::string>>& saga_downstream() {
    static const std::map<std::string, std::vector<std::string>> m{
        {"s1", {"s2", "s3"}}, {"s2", {}}, {"s3", {}}};
    return m;
}

inline std::vector<Workflow> saga_workflows() {
    std::vector<Workflow> w;
    w.push_back(WorkflowBuilder("saga", 1)
                    .default_retry(saga_crash_budget())
                    .step("s1", "work").input({{"seed", "${input.seed}"}}).compensate("undo")
                    .step("s2", "work").input({{"s1", "${steps.s1.output.hash}"}}).after("s1").compensate("undo")
                    .step("s3", "work").input({{"s1", "${steps.s1.output.hash}"}, {"k", 3}}).after("s1")
                        .compensate("undo")
                    .step(kSagaFails, "work").after({"s2", "s3"}).on_error(OnError::compensate)
                    .build());
    w.push_back(WorkflowBuilder("sub", 1)
                    .default_retry(saga_crash_budget())
                    .step("c1", "work").input({{"amount", "${input.amount}"}})
                    .step("c2", "work").input({{"c1", "${steps.c1.output.hash}"}}).after("c1")
                    .build());
    w.push_back(WorkflowBuilder("flow", 1)
                    .default_retry(saga_crash_budget())
                    .step("notify", "notify").input({{"seed", "${input.seed}"}})
                    .step("approve", "wait").input({{"signal", kSagaSignal}})
                    .step("pay", "workflow:sub").input({{"amount", "${input.seed}"}})
                    .step("ship", "work")
                        .input({{"go", "${steps.approve.output}"}, {"paid", "${steps.pay.output}"}})
                        .after({"notify", "approve", "pay"})
                    .build());
    return w;
}

/// Deterministic: the same step and input always give the same output.
inline Json saga_step_output(const std::string& step, const Json& input) {
    return Json{{"step", step}, {"hash", std::hash<std::string>{}(step + input.dump()) % 1000003}};
}

/// The signal's payload: the same however often notify runs.
inline Json saga_signal_payload(const Json& notify_input) {
    return Json{{"approved_by", "notify"}, {"seed", notify_input.value("seed", 0)}};
}

}  // namespace loom::test
