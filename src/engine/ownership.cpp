// Owning runs: claiming them (recover() and the periodic adoption), renewing
// their leases, fencing every commit, and giving runs up when a lease is
// lost or the executor stops. The timing is the LeaseKeeper's.
#include <algorithm>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "runtime/identity.hpp"

namespace loom {

void Executor::Impl::fence(detail::CommitQueue::Round& round) {
    round.batch.owner = leases_.identity();
    for (const auto& e : round.effects)
        if (e.run) round.batch.fenced.push_back(e.run->id);
    for (const auto& t : round.started) round.batch.fenced.push_back(t.run->id);
}

void Executor::Impl::renew_leases() {
    std::vector<std::shared_ptr<RunState>> runs;
    std::vector<RunId> ids;
    for (auto& run : live_.all()) {
        if (!run->owned.load()) continue;   // its first commit is under way
        ids.push_back(run->id);
        runs.push_back(std::move(run));
    }
    const auto asked = std::chrono::steady_clock::now();
    try {
        const auto lost = ids.empty() ? std::vector<RunId>{} : store_.renew_leases(leases_.identity(), ids, leases_.lease_end());
        leases_.renewed(asked);
        std::vector<std::shared_ptr<RunState>> gone;
        for (const auto& id : lost) {
            auto it = std::find(ids.begin(), ids.end(), id);
            if (it != ids.end()) gone.push_back(runs[static_cast<std::size_t>(it - ids.begin())]);
        }
        // A run that ended meanwhile is skipped by abandon_runs (it is done).
        if (!gone.empty())
            abandon_runs(gone,
                         std::make_exception_ptr(Conflict(error_id::store_not_owner,
                                                          "another executor took the run over: this one lost its lease")),
                         "lease lost: another executor owns the run now; this executor stops running it");
    } catch (const std::exception& e) {
        const bool holding = leases_.holding();
        report(LogRecord{holding ? LogLevel::warn : LogLevel::error, "", "", 0,
                         fmt::format("executor {}: renewing the leases of {} runs failed{}: {}",
                                     leases_.identity(), ids.size(),
                                     holding ? "; retrying" : "; the leases ran out, so it stops running them",
                                     e.what()),
                         std::nullopt});
        if (!holding) give_up_all("its leases ran out while the store could not be reached");
    }
}

void Executor::Impl::give_up_all(const std::string& why) {
    auto runs = live_.all();
    abandon_runs(runs,
                 std::make_exception_ptr(Conflict(error_id::store_not_owner, "executor " + leases_.identity() +
                                                                                  " gave the run up: " + why)),
                 "run given up: " + why + "; it is adopted (by any executor) once its lease has expired");
}

void Executor::Impl::release(const std::vector<RunId>& ids) {
    if (ids.empty()) return;
    try {
        store_.release_runs(leases_.identity(), ids);
    } catch (const std::exception& e) {
        // Their leases run out instead, and they are adopted then.
        report(LogRecord{LogLevel::warn, "", "", 0,
                         fmt::format("executor {}: releasing {} runs failed; they are adopted once "
                                     "their leases run out: {}",
                                     leases_.identity(), ids.size(), e.what()),
                         std::nullopt});
    }
}

std::vector<std::pair<std::string, std::int64_t>> Executor::Impl::runnable_workflows(bool recovering) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (const auto& record : store_.list_workflows()) {
        try {
            auto wf = workflows_.find(record.name, record.version);
            if (!wf) continue;
            (void)resolve_handlers(*wf, "");
            out.emplace_back(record.name, record.version);
        } catch (const Error& e) {
            // A handler it lacks, or a definition over its limits: runs of it
            // are left to an executor that can run them. recover() says so
            // when there are any, so that a host missing a handler hears of it.
            if (!recovering) continue;
            RunFilter unfinished;
            unfinished.workflow_name = record.name;
            unfinished.status = RunStatus::running;
            unfinished.limit = 1;
            if (store_.list_runs(unfinished).empty()) continue;
            report(LogRecord{LogLevel::warn, "", "", 0,
                             fmt::format("recover: unfinished runs of workflow \"{}\" version {} are left to "
                                         "other executors, as this one cannot run them: {}",
                                         record.name, record.version, e.what()),
                             std::nullopt});
        }
    }
    return out;
}

std::size_t Executor::Impl::claim_room() const {
    const std::size_t most = options_.max_claimed ? options_.max_claimed : 2 * pool_.size();
    const std::size_t held = claimed_held_.load();
    return held >= most ? 0 : most - held;
}

std::vector<RunId> Executor::Impl::claim_runs(bool recovering) {
    ClaimRequest request;
    request.owner = leases_.identity();
    for (auto& owner : store_.run_owners())
        if (detail::owner_gone(owner)) request.dead_owners.push_back(std::move(owner));
    // recover(): runs stored as this identity's that are not live here are
    // left from an earlier life of it (a host-chosen identity, restarted).
    if (recovering) request.dead_owners.push_back(leases_.identity());
    request.workflows = runnable_workflows(recovering);
    {
        MutexLock lock(runnable_mutex_);
        runnable_ = *request.workflows;
    }
    request.now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    request.until = leases_.lease_end();
    // Enqueued runs are claim_queued()'s, a share at a time: neither an
    // adoption round nor a worker's recover() at start-up may take a whole
    // backlog to one executor. Without adoption there are no such claims:
    // recover() is then how this executor takes runs, enqueued ones too.
    // (Runs an older Loom stored without an owner were marked expired when
    // the store's schema was upgraded.)
    request.enqueued = recovering && !options_.adopt;
    auto ids = store_.claim_runs(request);
    ids.erase(std::remove_if(ids.begin(), ids.end(), [&](const RunId& id) { return live_.find(id) != nullptr; }),
              ids.end());
    return ids;
}

std::vector<RunId> Executor::Impl::adopt(const std::vector<RunId>& ids, bool recovering, bool counted) {
    struct Resumable {
        RunInfo info;
        std::shared_ptr<const Workflow> wf;
        StepHandlers handlers;
        const char* event;
    };
    std::vector<Resumable> todo;
    std::vector<RunId> refused;
    for (const auto& id : ids) {
        try {
            auto info = store_.load_run(id);
            if (!info || is_final(info->status)) continue;
            auto wf = definition_of(*info);
            auto handlers = resolve_handlers(*wf, id);
            // Taken from the queue, or resumed after its owner: the history says which.
            const char* event = enqueued(*info) ? event::run_claimed : event::run_recovered;
            todo.push_back({std::move(*info), std::move(wf), std::move(handlers), event});
        } catch (const std::exception& e) {
            if (recovering) {   // recover() resumes nothing then
                release(ids);
                throw;
            }
            refused.push_back(id);
            report(LogRecord{LogLevel::error, id, "", 0,
                             std::string("adopting the run failed; it is left to others: ") + e.what(),
                             std::nullopt});
        }
    }
    release(refused);
    std::vector<RunId> resumed;
    for (auto& r : todo) {
        auto run = make_state(r.info, r.wf, std::move(r.handlers));
        {
            MutexLock lock(run->mutex);   // not shared yet: for the analysis
            load_deliveries(*run);
        }
        run->counted = counted;
        if (counted) ++claimed_held_;   // before it is live: it may end at once
        try {
            if (launch(run, r.info, /*fresh=*/false, r.event)) {
                resumed.push_back(run->id);
                continue;
            }
        } catch (...) {
            ended_claimed(*run);
            release({run->id});
            if (recovering) throw;
            continue;
        }
        ended_claimed(*run);   // live already: another recover() has it
    }
    return resumed;
}

void Executor::Impl::adopt_orphans() {
    if (stopping_) return;   // a stopping executor takes nothing on
    try {
        MutexLock lock(claiming_);
        (void)adopt(claim_runs(/*recovering=*/false), /*recovering=*/false);
    } catch (const std::exception& e) {
        // The store may be down: the next round tries again, so nothing is stranded.
        report(LogRecord{LogLevel::warn, "", "", 0,
                         fmt::format("executor {}: adopting runs failed; retrying: {}", leases_.identity(),
                                     e.what()),
                         std::nullopt});
    }
}

void Executor::Impl::claim_queued() {
    if (stopping_ || !options_.adopt) return;
    const std::size_t room = claim_room();
    if (room == 0) return;   // its share: the others take the rest
    try {
        MutexLock lock(claiming_);
        ClaimRequest request;
        request.owner = leases_.identity();
        {
            MutexLock lock(runnable_mutex_);
            if (!runnable_) runnable_ = runnable_workflows(/*recovering=*/false);
            request.workflows = runnable_;
        }
        request.now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
        request.until = leases_.lease_end();
        request.limit = room;
        auto ids = store_.claim_runs(request);
        // It found runs waiting: there may be more, so it looks again as soon
        // as a claimed run ends rather than a poll later. (A claim that
        // races another may get fewer than it asked for: PostgreSQL's SKIP
        // LOCKED passes over rows the other is taking.)
        queue_busy_ = !ids.empty();
        (void)adopt(ids, /*recovering=*/false, /*counted=*/true);
    } catch (const std::exception& e) {
        report(LogRecord{LogLevel::warn, "", "", 0,
                         fmt::format("executor {}: claiming enqueued runs failed; retrying: {}",
                                     leases_.identity(), e.what()),
                         std::nullopt});
    }
}

namespace {
bool nothing_begun(const RunInfo& run) {
    return std::all_of(run.steps.begin(), run.steps.end(),
                       [](const StepInfo& s) { return s.status == StepStatus::pending; });
}
}  // namespace

bool Executor::Impl::never_claimed(const RunInfo& run) {
    return run.owner.empty() && !run.lease_until && !is_final(run.status) && nothing_begun(run);
}

bool Executor::Impl::enqueued(const RunInfo& run) {
    if (!nothing_begun(run)) return false;
    const auto events = store_.load_events(run.id);
    return !events.empty() && events.front().kind == std::string_view(event::run_enqueued);
}

void Executor::Impl::ended_claimed(RunState& run) {
    if (run.counted.exchange(false)) --claimed_held_;
}

bool Executor::Impl::lost_to_another(const std::exception_ptr& why) {
    try {
        std::rethrow_exception(why);
    } catch (const Conflict& e) {
        return e.id() == std::string_view(error_id::store_not_owner);
    } catch (...) {
        return false;
    }
}

bool Executor::Impl::in_other_hands(const RunInfo& run) const {
    if (run.owner == leases_.identity() || is_final(run.status)) return false;
    if (never_claimed(run)) return true;   // enqueued: a worker claims it
    // Held, or its lease ended (or it was released) less than a lease ago:
    // changing hands, which an adoption round completes within half a lease.
    return run.lease_until && *run.lease_until + leases_.lease() > std::chrono::system_clock::now();
}

void Executor::Impl::poll_controls() {
    if (stopping_) return;
    try {
        bool queued = false;
        for (const auto& id : store_.controlled_runs(leases_.identity(), control_mark_)) {
            // Not live (yet): the launch that makes it live reads the request.
            if (auto run = live_.find(id)) queued = apply_controls(run) || queued;
        }
        if (queued) commit_from_timer();
    } catch (const std::exception& e) {
        // The next poll tries again; the mark moved only if the read went through.
        report(LogRecord{LogLevel::warn, "", "", 0,
                         fmt::format("executor {}: looking for requests from other executors failed; "
                                     "retrying: {}",
                                     leases_.identity(), e.what()),
                         std::nullopt});
    }
}

bool Executor::Impl::apply_controls(const std::shared_ptr<RunState>& run) {
    const auto latest = store_.load_run(run->id);
    if (!latest || is_final(latest->status)) return false;
    const auto events = store_.load_events(run->id);
    // The latest pause or resume not seen yet: history order decides, not
    // the row, which a pause() of this process may not have reached yet.
    std::optional<bool> paused;
    std::int64_t newest = 0;
    {
        MutexLock lock(run->mutex);
        for (const auto& e : events) {
            if (e.seq <= run->controls_seen || (e.kind != event::run_paused && e.kind != event::run_resumed))
                continue;
            paused = e.kind == event::run_paused;
            newest = e.seq;
        }
        run->controls_seen = std::max(run->controls_seen, newest);
    }
    // The store has the requests (recorded): only the live state changes.
    if (latest->cancel_requested) {
        std::vector<RunId> children;
        request_live(run, cancel_request(run->id, children), /*recorded=*/true);
        cancel_children(children);
    } else if (paused) {
        std::vector<Task> parked;
        request_live(run, pause_request(run->id, *paused, parked), /*recorded=*/true);
        pool_.push(parked);
    }
    MutexLock lock(run->mutex);
    if (run->final_submitted || run->abandoned || !merge_deliveries(*run, events)) return false;
    Queue queue(commits_, run);
    apply_deliveries(*run, queue, /*at_launch=*/false);
    end_run_if_over(*run, queue);
    queue.release(false);
    return true;
}

std::vector<RunId> Executor::recover() {
    MutexLock lock(impl_->claiming_);
    return impl_->adopt(impl_->claim_runs(/*recovering=*/true), /*recovering=*/true);
}

}  // namespace loom
