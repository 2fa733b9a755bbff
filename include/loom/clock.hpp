// Time, injected: the executor reads the clock for retry backoff, timeouts,
// deadlines and timers, so a test can skip time with testing::FakeClock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include <loom/run.hpp>

namespace loom {

/// A source of wall-clock time and a way to sleep by it.
///
/// Thread safety: implementations must allow now() and wait_until() from any
/// thread, concurrently.
class Clock {
public:
    virtual ~Clock() = default;
    virtual TimePoint now() const = 0;
    /// Blocks on `cv` (whose mutex `lock` holds) until `at` by this clock, a
    /// notify of `cv`, or a spurious wake-up; the caller re-checks its state.
    virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                            TimePoint at) const = 0;
};

/// The real clock: std::chrono::system_clock, with waits measured on the
/// steady clock so that a wall-clock jump does not stretch them.
class SystemClock final : public Clock {
public:
    TimePoint now() const override;
    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                    TimePoint at) const override;
    /// The process-wide instance the executor uses by default.
    static SystemClock& instance();
};

}  // namespace loom
