// The workflow the crash tests run: a source, 8 parallel branches of two steps,
// and a join. Some steps are of the kinds the executor treats apart: branch 0
// starts with a step that fails once and is retried after a backoff, branch 1
// ends with a step whose condition holds; beside the branches, a step whose
// condition does not hold (skipped), one that always fails under "continue"
// and a dependent that handles its failure, the built-in sleep, and a for_each
// over a list the source makes, whose element 1 fails once and is retried.
// Outputs depend on inputs, so a wrong or lost result (of a step or of an
// element) changes the final output; what an attempt does depends only on its
// unit of work (step or element) and attempt number, so the child and the
// checker agree on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <loom/loom.hpp>

namespace loom::test {

constexpr int kCrashBranches = 8;
constexpr const char* kCrashRetried = "work_0";   // fails its first attempt
constexpr const char* kCrashSkipped = "never";    // its condition is false
constexpr const char* kCrashDoomed = "doomed";    // always fails, under "continue"
constexpr const char* kCrashSleep = "nap";        // built-in sleep: no handler, no ledger line
constexpr const char* kCrashSource = "src";       // its output has the list the for_each runs over
constexpr const char* kCrashFan = "fan";          // for_each: one handler call per element
constexpr int kCrashItems = 6;                    // elements of the list
constexpr std::uint32_t kCrashRetriedItem = 1;    // the element that fails its first attempt
constexpr std::uint32_t kCrashFanParallel = 2;    // the for_each's max_parallel
/// The retried step's wait after its failed first attempt.
constexpr std::chrono::milliseconds kCrashBackoff{5};
constexpr int kCrashNapMs = 5;

/// The name of a unit of work, a handler's key in the ledger: the step's id,
/// or "fan[3]" for element 3 of a for_each step. Elements have their own
/// attempts and checkpoints, so the checker judges each as it judges a step.
inline std::string crash_unit(const std::string& step, std::optional<std::uint32_t> item) {
    return item ? step + "[" + std::to_string(*item) + "]" : step;
}

/// The step and the element index a crash_unit() name stands for.
inline std::pair<std::string, std::optional<std::uint32_t>> parse_crash_unit(const std::string& unit) {
    const auto bracket = unit.find('[');
    if (bracket == std::string::npos) return {unit, std::nullopt};
    return {unit.substr(0, bracket), std::uint32_t(std::stoul(unit.substr(bracket + 1)))};
}

/// What the handler does with an attempt of a unit of work.
enum class CrashAttempt { succeeds, fails_retryable, fails_fatal };

inline CrashAttempt crash_attempt(const std::string& unit, int attempt) {
    if ((unit == kCrashRetried || unit == crash_unit(kCrashFan, kCrashRetriedItem)) && attempt == 1)
        return CrashAttempt::fails_retryable;
    if (unit == kCrashDoomed) return CrashAttempt::fails_fatal;
    return CrashAttempt::succeeds;
}

inline Workflow crash_workflow() {
    // An attempt in flight at a kill counts as one: every step has a budget
    // no trial exhausts, so the run ends as an uncrashed one does.
    RetryPolicy retry;
    retry.max_attempts = 64;
    retry.initial_backoff = kCrashBackoff;
    WorkflowBuilder b("crash", 1);
    b.default_retry(retry);
    b.deadline(std::chrono::minutes(10));   // armed in every process, never reached
    b.step(kCrashSource, "work").input({{"seed", "${input.seed}"}});
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
    // Each element's input differs (its value and position), so each has its own output.
    b.step(kCrashFan, "work").after("src").for_each("${steps.src.output.list}")
        .input({{"x", "${item}"}, {"at", "${index}"}}).max_parallel(kCrashFanParallel).retry(retry);
    for (const char* s : {kCrashSkipped, "rescue", kCrashSleep, kCrashFan}) joined.push_back(s);
    b.step("join", "work").run_if_skipped();   // one of its dependencies is skipped
    for (const auto& j : joined) b.after(j);
    return b.build();
}

/// The poison trial's workflow: a step and one for_each element whose
/// handler ("poison") kills its process at every attempt, each under
/// on_error "continue" with kPoisonAttempts attempts, and a step after them
/// that reports how they ended. Each must end failed as interrupted, and the
/// run complete, after at most kPoisonAttempts + 1 kills each.
constexpr int kPoisonAttempts = 3;
constexpr std::uint32_t kPoisonItem = 1;   // the element that kills its process

inline Workflow poison_workflow() {
    RetryPolicy retry;
    retry.max_attempts = kPoisonAttempts;
    retry.initial_backoff = std::chrono::milliseconds(1);
    return WorkflowBuilder("poison", 1)
        .default_retry(retry)
        .step("first", "work").input({{"seed", "${input.seed}"}})
        .step("poison", "poison").after("first").on_error(OnError::proceed)
        .step("each", "poison").after("first").for_each("${input.list}").max_parallel(1)
            .input({{"x", "${item}"}, {"at", "${index}"}}).on_error(OnError::proceed)
        .step("report", "work").after({"poison", "each"})
            .input({{"poison", "${steps.poison.status}"}, {"each", "${steps.each.status}"}})
        .build();
}

/// Deterministic: the same unit of work and input always give the same
/// output. The source's output also has the list the for_each runs over,
/// made from its hash so that it depends on the run's input.
inline Json crash_step_output(const std::string& unit, const Json& input) {
    const std::size_t hash = std::hash<std::string>{}(unit + input.dump()) % 1000003;
    Json out{{"step", unit}, {"hash", hash}};
    if (unit == kCrashSource) {
        Json list = Json::array();
        for (std::size_t i = 0; i < std::size_t(kCrashItems); ++i)
            list.push_back((hash + 7919 * i) % 1000003);
        out["list"] = std::move(list);
    }
    return out;
}

}  // namespace loom::test
