// One thread that calls functions at instants of an injected Clock: retry
// backoff, attempt timeouts and run deadlines wait here, holding no worker
// thread. Internal. Timers live in memory only: what must survive a restart
// (a retry's due time) is in the store, and recover() schedules it again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <loom/clock.hpp>

namespace loom::detail {

class TimerQueue {
public:
    using Id = std::uint64_t;

    explicit TimerQueue(const Clock& clock);
    /// Stops (see stop()).
    ~TimerQueue();
    TimerQueue(const TimerQueue&) = delete;
    TimerQueue& operator=(const TimerQueue&) = delete;

    /// Calls `fire` on the timer thread once the clock reaches `at` (at once if
    /// it has). `fire` must not throw, and must not call stop().
    Id add(TimePoint at, std::function<void()> fire);
    /// Forgets a timer that has not fired; no effect once it has.
    void cancel(Id id);
    /// Joins the timer thread; timers not yet fired never fire. Idempotent.
    void stop();
    /// Timers added and neither fired nor cancelled.
    std::size_t size() const;

private:
    void loop();

    const Clock& clock_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    using Due = std::pair<TimePoint, Id>;   // earliest first; ties in order added
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;  // guarded by mutex_
    std::unordered_map<Id, std::function<void()>> pending_;              // guarded by mutex_
    Id next_id_ = 1;                                                     // guarded by mutex_
    bool stopping_ = false;                                              // guarded by mutex_
    std::thread thread_;   // last: started once the rest is ready
};

}  // namespace loom::detail
