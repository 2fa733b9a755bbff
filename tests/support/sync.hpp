// Synchronisation helpers for tests whose handlers must meet the test thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace loom::test {

/// Counts how often each step ran, across executors.
struct RunCounter {
    std::mutex mutex;
    std::map<std::string, int> counts;
    void hit(const std::string& step) {
        std::lock_guard lock(mutex);
        ++counts[step];
    }
    int get(const std::string& step) {
        std::lock_guard lock(mutex);
        return counts[step];
    }
};

/// A gate handlers block on until the test opens it.
struct Gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    int waiting = 0;
    void pass() {
        std::unique_lock lock(mutex);
        ++waiting;
        cv.notify_all();
        cv.wait(lock, [this] { return open; });
    }
    void wait_for_waiters(int n) {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return waiting >= n; });
    }
    void release() {
        std::lock_guard lock(mutex);
        open = true;
        cv.notify_all();
    }
};

/// Opens the gate `after` from now, from another thread: for a handler that
/// must return while the test thread is inside ~Executor.
inline void release_later(Gate& gate, std::chrono::milliseconds after = std::chrono::milliseconds(100)) {
    std::thread([&gate, after] {
        std::this_thread::sleep_for(after);
        gate.release();
    }).detach();
}

/// Polls `condition` until it holds (true) or `limit` passes (false): for
/// states a test cannot be told about, e.g. a step waiting on a timer.
template <class Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace loom::test
