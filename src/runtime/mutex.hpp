// A mutex, its scoped lock and a condition variable that clang's thread-safety
// analysis understands (-Wthread-safety): libstdc++'s std::mutex carries no
// annotations, so Loom's code locks through these. Internal.
//
// Annotate what a mutex guards with LOOM_GUARDED_BY(mutex_) and what a function
// needs held with LOOM_REQUIRES(mutex_); the "tsa" stage of .ci/run builds with
// clang -Wthread-safety -Werror. Other compilers see plain std::mutex.
//
// The stage turns off -Wthread-safety-precise: the engine names a run both as
// `run` and as `*task.run`, and the precise check cannot tell that those are the
// same mutex; the rest of the analysis still checks every access. A lambda
// called with a mutex held says so as a function does, LOOM_REQUIRES after its
// parameters; a call through std::function is not checked (its body is a
// system header), so the function that calls it must hold the lock itself.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define LOOM_TSA(x) __attribute__((x))
#else
#define LOOM_TSA(x)
#endif

#define LOOM_CAPABILITY(name) LOOM_TSA(capability(name))
#define LOOM_SCOPED_CAPABILITY LOOM_TSA(scoped_lockable)
#define LOOM_GUARDED_BY(m) LOOM_TSA(guarded_by(m))
#define LOOM_PT_GUARDED_BY(m) LOOM_TSA(pt_guarded_by(m))
#define LOOM_REQUIRES(...) LOOM_TSA(requires_capability(__VA_ARGS__))
#define LOOM_EXCLUDES(...) LOOM_TSA(locks_excluded(__VA_ARGS__))
#define LOOM_ACQUIRE(...) LOOM_TSA(acquire_capability(__VA_ARGS__))
#define LOOM_RELEASE(...) LOOM_TSA(release_capability(__VA_ARGS__))
#define LOOM_ASSERT_HELD(m) LOOM_TSA(assert_capability(m))
#define LOOM_RETURN_CAPABILITY(m) LOOM_TSA(lock_returned(m))
/// For the few functions whose locking the analysis cannot follow; say why beside it.
#define LOOM_NO_TSA LOOM_TSA(no_thread_safety_analysis)

namespace loom::detail {

class LOOM_CAPABILITY("mutex") Mutex {
public:
    Mutex() = default;
    Mutex(const Mutex&) = delete;
    Mutex& operator=(const Mutex&) = delete;

    void lock() LOOM_ACQUIRE() { m_.lock(); }
    void unlock() LOOM_RELEASE() { m_.unlock(); }
    /// Tells the analysis the caller holds it (where it cannot see that, e.g.
    /// in a lambda run under the lock); checks nothing at run time.
    void assert_held() const LOOM_ASSERT_HELD(this) {}

private:
    friend class CondVar;
    std::mutex m_;
};

/// Holds a Mutex for its scope; may be released early (unlock) and taken again.
class LOOM_SCOPED_CAPABILITY MutexLock {
public:
    explicit MutexLock(Mutex& m) LOOM_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~MutexLock() LOOM_RELEASE() {
        if (held_) m_.unlock();
    }
    MutexLock(const MutexLock&) = delete;
    MutexLock& operator=(const MutexLock&) = delete;

    void unlock() LOOM_RELEASE() {
        held_ = false;
        m_.unlock();
    }
    void lock() LOOM_ACQUIRE() {
        m_.lock();
        held_ = true;
    }

private:
    Mutex& m_;
    bool held_ = true;
};

/// std::condition_variable for a Mutex: wait() needs it held, as std's needs a
/// unique_lock, and returns with it held.
class CondVar {
public:
    void notify_one() noexcept { cv_.notify_one(); }
    void notify_all() noexcept { cv_.notify_all(); }

    void wait(Mutex& m) LOOM_REQUIRES(m) {
        std::unique_lock<std::mutex> lock(m.m_, std::adopt_lock);
        cv_.wait(lock);
        lock.release();
    }
    /// Waits until `done()` holds; `done` runs with `m` held.
    template <class Predicate>
    void wait(Mutex& m, Predicate done) LOOM_REQUIRES(m) {
        while (!done()) wait(m);
    }
    /// As wait(m, done), but gives up after `timeout`: returns done().
    template <class Rep, class Period, class Predicate>
    bool wait_for(Mutex& m, std::chrono::duration<Rep, Period> timeout, Predicate done) LOOM_REQUIRES(m) {
        return wait_until(m, std::chrono::steady_clock::now() + timeout, done);
    }
    template <class Clock, class Duration, class Predicate>
    bool wait_until(Mutex& m, std::chrono::time_point<Clock, Duration> at, Predicate done) LOOM_REQUIRES(m) {
        std::unique_lock<std::mutex> lock(m.m_, std::adopt_lock);
        const bool ok = cv_.wait_until(lock, at, done);
        lock.release();
        return ok;
    }
    /// Waits until notified or `at` passes; false if it passed.
    template <class Clock, class Duration>
    bool wait_until(Mutex& m, std::chrono::time_point<Clock, Duration> at) LOOM_REQUIRES(m) {
        std::unique_lock<std::mutex> lock(m.m_, std::adopt_lock);
        const bool ok = cv_.wait_until(lock, at) == std::cv_status::no_timeout;
        lock.release();
        return ok;
    }

private:
    std::condition_variable cv_;
};

}  // namespace loom::detail
