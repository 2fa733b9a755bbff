// What Loom's benchmarks share: the no-op workflows they time and how they
// sum up rounds. Header-only; each benchmark is one executable.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace loom::bench {

/// Limits that admit the largest benchmark shapes (20,000 steps).
inline DefinitionLimits big_limits() {
    DefinitionLimits l;
    l.max_steps = 20'000;
    l.max_bytes = 16 << 20;
    return l;
}

/// `n` "noop" steps s0 -> s1 -> ... in one chain.
inline Workflow chain(const std::string& name, int n) {
    WorkflowBuilder b(name, 1);
    for (int i = 0; i < n; ++i) {
        b.step("s" + std::to_string(i), "noop");
        if (i > 0) b.after("s" + std::to_string(i - 1));
    }
    return b.build(big_limits());
}

/// The median of rounds (0 for none).
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace loom::bench
