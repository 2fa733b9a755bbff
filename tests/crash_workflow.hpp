// The workflow the crash tests run: a source, 8 parallel branches of two steps,
// and a join. Outputs depend on inputs, so a wrong or lost result changes the
// final output.
#pragma once

#include <string>

#include <loom/loom.hpp>

namespace loom::test {

constexpr int kCrashBranches = 8;

inline Workflow crash_workflow() {
    WorkflowBuilder b("crash", 1);
    b.step("src", "work").input({{"seed", "${input.seed}"}});
    std::vector<std::string> posts;
    for (int i = 0; i < kCrashBranches; ++i) {
        auto n = std::to_string(i);
        b.step("work_" + n, "work").input({{"seed", "${steps.src.output}"}, {"k", i}}).after("src");
        b.step("post_" + n, "work").after("work_" + n);
        posts.push_back("post_" + n);
    }
    b.step("join", "work");
    for (const auto& p : posts) b.after(p);
    return b.build();
}

/// Deterministic: the same step and input always give the same output.
inline Json crash_step_output(const std::string& step, const Json& input) {
    return Json{{"step", step}, {"hash", std::hash<std::string>{}(step + input.dump()) % 1000003}};
}

inline constexpr int crash_step_count() { return 2 + 2 * kCrashBranches; }

}  // namespace loom::test
