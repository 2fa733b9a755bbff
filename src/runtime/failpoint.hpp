// Failpoints: named places in the executor where a crash test can kill the
// process, so that it can crash at every transition of a workflow in turn.
// Disarmed (the default) a failpoint costs one relaxed atomic load. Internal:
// only tests arm them.
#pragma once

#include <atomic>
#include <string>

namespace loom::detail {

extern std::atomic<bool> failpoints_armed;

/// The slow path of failpoint(): counts the hit and SIGKILLs the process on
/// the armed one.
void failpoint_hit(const char* name) noexcept;

inline void failpoint(const char* name) noexcept {
    if (failpoints_armed.load(std::memory_order_relaxed)) failpoint_hit(name);
}

/// Kills the process at the n-th hit (1-based) of failpoint `name`, or of any
/// failpoint when name is "*". n == 0 only counts hits.
void arm_failpoint(const std::string& name, long n);

/// Hits counted since arm_failpoint.
long failpoint_hits() noexcept;

}  // namespace loom::detail
