// The workflow the crash tests run: a source, 8 parallel branches of two steps,
// and a join. Some steps are of the kinds the executor treats apart: branch 0
// starts with a step that fails once and is retried after a backoff, branch 1
// ends with a step whose condition holds; beside the branches, a step whose
// condition does not hold (skipped), one that always fails under "continue"
// and a dependent that handles its failure, and the built-in sleep. Outputs
// depend on inputs, so a wrong or lost result changes the final output; what
// an attempt does depends only on its step and attempt number, so the child
// and the checker agree on it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace loom::test {

constexpr int kCrashBranches = 8;
constexpr const char* kCrashRetried = "work_0";   // fails its first attempt
constexpr const char* kCrashSkipped = "never";    // its condition is false
constexpr const char* kCrashDoomed = "doomed";    // always fails, under "continue"
constexpr const char* kCrashSleep = "nap";        // built-in sleep: no handler, no ledger line
/// The retried step's wait after its failed first attempt.
constexpr std::chrono::milliseconds kCrashBackoff{5};
constexpr int kCrashNapMs = 5;

/// What the handler does with an attempt.
enum class CrashAttempt { succeeds, fails_retryable, fails_fatal };

inline CrashAttempt crash_attempt(const std::string& step, int attempt) {
    if (step == kCrashRetried && attempt == 1) return CrashAttempt::fails_retryable;
    if (step == kCrashDoomed) return CrashAttempt::fails_fatal;
    return CrashAttempt::succeeds;
}

inline Workflow crash_workflow() {
    RetryPolicy retry;
    retry.max_attempts = 2;
    retry.initial_backoff = kCrashBackoff;
    WorkflowBuilder b("crash", 1);
    b.deadline(std::chrono::minutes(10));   // armed in every process, never reached
    b.step("src", "work").input({{"seed", "${input.seed}"}});
    std::vector<std::string> joined;
    for (int i = 0; i < kCrashBranches; ++i) {
        auto n = std::to_string(i);
        b.step("work_" + n, "work").input({{"seed", "${steps.src.output}"}, {"k", i}}).after("src");
        if (i == 0) b.retry(retry);
        b.step("post_" + n, "work").after("work_" + n);
        if (i == 1) b.when("${steps.work_1.output.hash} >= 0");
        joined.push_back("post_" + n);
    }
    b.step(kCrashSkipped, "work").after("src").when("${steps.src.output.hash} < 0");
    b.step(kCrashDoomed, "work").after("src").on_error(OnError::proceed);
    b.step("rescue", "work").after(kCrashDoomed).when("${steps.doomed.status} == 'failed'");
    b.step(kCrashSleep, "sleep").input({{"ms", kCrashNapMs}}).after("src");
    for (const char* s : {kCrashSkipped, "rescue", kCrashSleep}) joined.push_back(s);
    b.step("join", "work").run_if_skipped();   // one of its dependencies is skipped
    for (const auto& j : joined) b.after(j);
    return b.build();
}

/// Deterministic: the same step and input always give the same output.
inline Json crash_step_output(const std::string& step, const Json& input) {
    return Json{{"step", step}, {"hash", std::hash<std::string>{}(step + input.dump()) % 1000003}};
}

}  // namespace loom::test
