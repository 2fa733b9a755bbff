// The real clock.
#include <loom/clock.hpp>

namespace loom {

TimePoint SystemClock::now() const { return std::chrono::system_clock::now(); }

void SystemClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                             TimePoint at) const {
    const auto left = at - now();
    if (left <= TimePoint::duration::zero()) return;
    // Measured on the steady clock: setting the wall clock back must not make
    // a 100 ms wait last an hour. The caller re-checks against now() anyway.
    cv.wait_for(lock, left);
}

SystemClock& SystemClock::instance() {
    static SystemClock clock;
    return clock;
}

}  // namespace loom
