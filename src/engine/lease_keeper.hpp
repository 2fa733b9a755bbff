// The executor's identity and its leases on the runs it owns: when they were
// last renewed, whether they still hold, and the threads that renew them and
// adopt runs nobody holds. Internal. What renewing and adopting do is the
// executor's (ownership.cpp); this class keeps the timing.
//
// Leases are measured in real time, never on ExecutorOptions::clock: they
// coordinate processes, which share no fake clock.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <loom/run.hpp>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// Thread safety: any thread. start() and stop() from one thread (the
/// executor's constructor and destructor).
class LeaseKeeper {
public:
    /// `identity` empty: a new one (runtime/identity.hpp).
    LeaseKeeper(std::string identity, std::chrono::milliseconds lease);
    ~LeaseKeeper();
    LeaseKeeper(const LeaseKeeper&) = delete;
    LeaseKeeper& operator=(const LeaseKeeper&) = delete;

    const std::string& identity() const noexcept { return identity_; }
    std::chrono::milliseconds lease() const noexcept { return lease_; }
    /// The end of a lease taken or renewed now, as stored.
    TimePoint lease_end() const;

    /// True while the leases renewed last still hold here, with a margin (a
    /// fifth of the lease) for the store's clock and the time a commit takes:
    /// past it, another executor may claim the runs any moment, so no handler
    /// of them may start. Reads no lock.
    bool holding() const;
    /// The renewal asked at `asked` (steady clock, before the store call) went
    /// through: the leases hold until asked + lease - margin.
    void renewed(std::chrono::steady_clock::time_point asked);

    /// Starts two threads: one calls renew() every lease/3, the other adopt()
    /// every lease/2 (when given), purge() every `purge_every` (when given)
    /// and poll() every `poll_every`. renew and poll must be given. Each is
    /// called with no lock held and must not throw.
    void start(std::function<void()> renew, std::function<void()> adopt, std::function<void()> poll,
               std::chrono::milliseconds poll_every, std::function<void()> purge = nullptr,
               std::chrono::milliseconds purge_every = {});
    /// Makes poll() due now (once the current task returns): work may be
    /// waiting that the next regular poll would find late.
    void poll_soon();
    /// Stops and joins the threads; none of the three is called again.
    void stop();

private:
    /// A task of the thread and when it is next due.
    struct Periodic {
        std::function<void()> run;
        std::chrono::milliseconds every;
        std::chrono::steady_clock::time_point due;
    };
    /// Runs `tasks` as they fall due until stop(); `pollable`: the last one
    /// is poll(), which poll_soon() makes due.
    void loop(std::vector<Periodic> tasks, bool pollable);

    const bool made_here_;   // by new_identity(), which registers it
    const std::string identity_;
    const std::chrono::milliseconds lease_;
    std::atomic<std::int64_t> holding_until_ns_;   // steady clock
    Mutex mutex_;
    CondVar wake_;
    bool stopping_ LOOM_GUARDED_BY(mutex_) = false;
    bool poll_soon_ LOOM_GUARDED_BY(mutex_) = false;
    std::thread renewer_;   // renew()
    std::thread worker_;    // adopt() and poll()
};

}  // namespace loom::detail
