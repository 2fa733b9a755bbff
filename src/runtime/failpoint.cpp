#include "runtime/failpoint.hpp"

#include <csignal>
#include <mutex>

#include <unistd.h>

namespace loom::detail {
namespace {
std::mutex mutex;
std::string armed_name;   // guarded by mutex
long armed_at = 0;        // guarded by mutex
long hits = 0;            // guarded by mutex
}  // namespace

std::atomic<bool> failpoints_armed{false};

void failpoint_hit(const char* name) noexcept {
    std::lock_guard lock(mutex);
    if (armed_name != "*" && armed_name != name) return;
    if (++hits == armed_at) ::kill(::getpid(), SIGKILL);
}

void arm_failpoint(const std::string& name, long n) {
    std::lock_guard lock(mutex);
    armed_name = name;
    armed_at = n;
    hits = 0;
    failpoints_armed.store(true, std::memory_order_relaxed);
}

long failpoint_hits() noexcept {
    std::lock_guard lock(mutex);
    return hits;
}

}  // namespace loom::detail
