// Counts the attempts in flight (claimed, not yet finished) so that an
// executor's destruction can wait for them. Internal.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// Thread safety: any thread. enter() and leave() take no lock unless a
/// drain() is waiting.
class InFlight {
public:
    void enter() noexcept { count_.fetch_add(1); }
    void leave() {
        // The last one out tells a drain() waiting for it.
        if (count_.fetch_sub(1) == 1 && draining_.load()) {
            MutexLock lock(mutex_);
            idle_.notify_all();
        }
    }
    /// Waits until none is in flight, at most `grace`; false if some still are.
    /// Once called, every leave() that empties the count notifies.
    bool drain(std::chrono::milliseconds grace) {
        draining_ = true;
        MutexLock lock(mutex_);
        return idle_.wait_for(mutex_, grace, [this] { return count_.load() == 0; });
    }

private:
    std::atomic<std::size_t> count_{0};
    std::atomic<bool> draining_{false};
    Mutex mutex_;
    CondVar idle_;
};

}  // namespace loom::detail
