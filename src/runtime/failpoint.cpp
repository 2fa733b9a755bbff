#include "runtime/failpoint.hpp"

#include <csignal>

#include <unistd.h>

#include "runtime/mutex.hpp"

namespace loom::detail {
namespace {
Mutex mutex;
std::string armed_name LOOM_GUARDED_BY(mutex);
long armed_at LOOM_GUARDED_BY(mutex) = 0;
long hits LOOM_GUARDED_BY(mutex) = 0;
}  // namespace

std::atomic<bool> failpoints_armed{false};

void failpoint_hit(const char* name) noexcept {
    MutexLock lock(mutex);
    if (armed_name != "*" && armed_name != name) return;
    if (++hits == armed_at) ::kill(::getpid(), SIGKILL);
}

void arm_failpoint(const std::string& name, long n) {
    MutexLock lock(mutex);
    armed_name = name;
    armed_at = n;
    hits = 0;
    failpoints_armed.store(true, std::memory_order_relaxed);
}

long failpoint_hits() noexcept {
    MutexLock lock(mutex);
    return hits;
}

}  // namespace loom::detail
