#include "runtime/timer_queue.hpp"

namespace loom::detail {

TimerQueue::TimerQueue(const Clock& clock) : clock_(clock), thread_([this] { loop(); }) {}

TimerQueue::~TimerQueue() { stop(); }

TimerQueue::Id TimerQueue::add(TimePoint at, std::function<void()> fire) {
    std::lock_guard lock(mutex_);
    const Id id = next_id_++;
    pending_.emplace(id, std::move(fire));
    // Wake the thread only if this timer is now the earliest: it sleeps until
    // the earliest one otherwise.
    const bool earliest = due_.empty() || at < due_.top().first;
    due_.emplace(at, id);
    if (earliest) wake_.notify_one();
    return id;
}

void TimerQueue::cancel(Id id) {
    std::lock_guard lock(mutex_);
    pending_.erase(id);   // its heap entry is skipped when it comes up
}

void TimerQueue::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
        wake_.notify_all();
    }
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::size_t TimerQueue::size() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
}

void TimerQueue::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        while (!due_.empty() && !pending_.count(due_.top().second)) due_.pop();   // cancelled
        if (due_.empty()) {
            wake_.wait(lock);
            continue;
        }
        const auto [at, id] = due_.top();
        if (clock_.now() < at) {
            clock_.wait_until(wake_, lock, at);
            continue;   // re-check: woken early, stopped, or an earlier timer came
        }
        due_.pop();
        auto node = pending_.extract(id);
        lock.unlock();
        node.mapped()();   // without the lock: it may add timers
        lock.lock();
    }
}

}  // namespace loom::detail
