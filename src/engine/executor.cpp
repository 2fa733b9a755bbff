// The Executor's public verbs: definitions, starting, waiting, reading,
// cancelling and recovering runs. Running steps lives in scheduler.cpp.
#include <loom/executor.hpp>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <limits>
#include <random>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "handlers/builtins.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"

namespace loom {
namespace {

/// 15 characters of base62: 8 of milliseconds since the epoch, so ids sort by
/// start time, then 7 from a per-process random offset plus a counter, so one
/// process never repeats an id and two collide only by chance (~2^-41 per pair
/// started in the same millisecond; the store refuses a duplicate). Short
/// enough for the small-string buffer: copying an id allocates nothing.
RunId new_run_id() {
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static std::atomic<std::uint64_t> counter{std::random_device{}() * 4294967296ull + std::random_device{}()};
    auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
    std::uint64_t tail = counter.fetch_add(1, std::memory_order_relaxed);
    RunId id(15, '0');
    for (int i = 7; i >= 0; --i, ms /= 62) id[i] = digits[ms % 62];
    for (int i = 14; i >= 8; --i, tail /= 62) id[i] = digits[tail % 62];
    return id;
}

/// Validates the options; returns how many worker threads to start.
unsigned checked_thread_count(const ExecutorOptions& options) {
    const auto& l = options.limits;
    if (l.max_steps == 0 || l.max_depth == 0 || l.max_bytes == 0)
        throw InvalidArgument(error_id::options_limits,
                              fmt::format("ExecutorOptions::limits must be positive (max_steps {}, "
                                          "max_depth {}, max_bytes {})",
                                          l.max_steps, l.max_depth, l.max_bytes));
    if (options.payload.max_bytes == 0 || options.payload.max_depth == 0)
        throw InvalidArgument(error_id::options_payload,
                              fmt::format("ExecutorOptions::payload limits must be positive (max_bytes "
                                          "{}, max_depth {})",
                                          options.payload.max_bytes, options.payload.max_depth));
    for (const auto* limits : {&options.max_running_per_handler, &options.max_running_per_workflow}) {
        for (const auto& [name, limit] : *limits) {
            if (limit == 0)
                throw InvalidArgument(error_id::options_max_running,
                                      fmt::format("ExecutorOptions::max_running_per_{} for \"{}\" is 0; it must "
                                                  "be at least 1",
                                                  limits == &options.max_running_per_handler ? "handler" : "workflow",
                                                  name));
        }
    }
    if (options.control_poll < std::chrono::milliseconds(1))
        throw InvalidArgument(error_id::options_duration,
                              fmt::format("ExecutorOptions::control_poll is {} ms; it must be at least 1 ms",
                                          options.control_poll.count()));
    if (options.retention && *options.retention < std::chrono::milliseconds(1))
        throw InvalidArgument(error_id::options_duration,
                              fmt::format("ExecutorOptions::retention is {} ms; it must be at least 1 ms",
                                          options.retention->count()));
    if (options.retention_every < std::chrono::milliseconds(1))
        throw InvalidArgument(error_id::options_duration,
                              fmt::format("ExecutorOptions::retention_every is {} ms; it must be at least 1 ms",
                                          options.retention_every.count()));
    if (options.lease < std::chrono::milliseconds(10))
        throw InvalidArgument(error_id::options_duration,
                              fmt::format("ExecutorOptions::lease is {} ms; it must be at least 10 ms",
                                          options.lease.count()));
    for (const auto& [name, value] : {std::pair{"shutdown_grace", options.shutdown_grace},
                                      std::pair{"delivery_poll", options.delivery_poll}}) {
        if (value.count() < 0)
            throw InvalidArgument(error_id::options_duration,
                                  fmt::format("ExecutorOptions::{} is {} ms; it must not be negative", name,
                                              value.count()));
    }
    if (options.threads > 1024)
        throw InvalidArgument(error_id::options_threads,
                              fmt::format("ExecutorOptions::threads is {}; at most 1024", options.threads));
    if (options.threads > 0) return options.threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Executor::Impl::Impl(Store& store, HandlerRegistry& handlers, ExecutorOptions options)
    : store_(store),
      handlers_(handlers),
      options_(options),
      clock_(options.clock ? *options.clock : SystemClock::instance()),
      leases_(options.identity, options.lease),
      workflows_(store, options.limits),
      limits_(options.max_running_per_handler, options.max_running_per_workflow),
      timers_(clock_),
      pool_(checked_thread_count(options), [this](Task& t) { run_task(t); },
            [this] { return lead_if_idle(); }) {}

Executor::Impl::~Impl() {
    stopping_ = true;
    leases_.stop();   // no adoption from here on; the leases last while handlers finish
    timers_.stop();   // waits in progress stay in the store; recover() re-arms them
    if (!in_flight_.drain(options_.shutdown_grace)) cancel_attempts();
    pool_.stop();
    // Commit what the last handlers left queued, so their results are kept.
    if (commits_.claim()) {
        Task held;   // dispatching is over: the stopped pool drops ready steps
        lead(&held);
    }
    std::vector<RunId> left;
    for (auto& run : live_.all()) {
        MutexLock run_lock(run->mutex);
        if (!run->done && run->owned.load()) left.push_back(run->id);
        // A paused run's parked tasks point back at the run: dropped (the pool
        // is stopped), or the run would keep itself alive after the executor.
        run->parked.clear();
        if (run->done) continue;
        run->done = true;
        run->store_error = std::make_exception_ptr(Conflict(
            error_id::executor_stopped,
            "run " + run->id + " was left unfinished when its executor stopped; recover() resumes it"));
        run->done_cv.notify_all();
    }
    release(left);   // any executor may take them on at once
}

void Executor::Impl::cancel_attempts() {
    attempts_cancelled_ = true;   // before any handler can see ctx.cancelled()
    for (auto& run : live_.all()) {
        MutexLock lock(run->mutex);
        run->cancel_flag = true;   // attempts without a flag of their own read this one
        for (auto& slot : run->steps) {
            if (slot.attempt_flag) slot.attempt_flag->store(true);
            if (!slot.fan) continue;
            for (auto& item : slot.fan->items)
                if (item.attempt_flag) item.attempt_flag->store(true);
        }
    }
}

std::shared_ptr<const Workflow> Executor::Impl::definition_of(const RunInfo& run) {
    auto wf = workflows_.find(run.workflow_name, run.workflow_version);
    if (wf->hash() != run.workflow_hash) {
        throw Conflict(error_id::run_definition_changed,
                       fmt::format("run {} started with workflow \"{}\" version {} hash {}, but the stored "
                                   "definition has hash {}",
                                   run.id, run.workflow_name, run.workflow_version, run.workflow_hash, wf->hash()));
    }
    return wf;
}

StepHandlers Executor::Impl::resolve_handlers(const Workflow& wf, const RunId& run) {
    auto find = [&](const std::string& step, const std::string& name, const char* role) {
        auto h = detail::builtin_handler(name);
        if (!h) h = handlers_.find(name);
        if (!h) {
            throw NotFound(error_id::handler_unknown,
                           fmt::format("{}workflow \"{}\" step \"{}\" uses {} \"{}\", which is not "
                                       "registered",
                                       run.empty() ? "" : "run " + run + ": ", wf.name(), step, role, name));
        }
        return h;
    };
    StepHandlers found;
    for (std::size_t i = 0; i < wf.steps().size(); ++i) {
        const Step& step = wf.steps()[i];
        if (detail::kind_of(wf, i) == detail::StepKind::child && !stood_in(wf, static_cast<std::uint32_t>(i))) {
            const std::string child(detail::child_workflow(step.handler));
            try {
                (void)workflows_.find(child, std::nullopt);
            } catch (const NotFound&) {
                throw NotFound(error_id::workflow_unknown,
                               fmt::format("{}workflow \"{}\" step \"{}\" runs workflow \"{}\", which is not "
                                           "registered",
                                           run.empty() ? "" : "run " + run + ": ", wf.name(), step.id, child));
            }
        }
        found.run.push_back(find(step.id, step.handler, "handler"));
        found.compensate.push_back(
            step.compensate ? find(step.id, step.compensate->handler, "compensation handler") : nullptr);
    }
    return found;
}

StepHandlers Executor::Impl::resolve_tree(const Workflow& wf) {
    StepHandlers found = resolve_handlers(wf, "");
    // Depth first, each workflow once: a workflow may run itself, or share a child.
    std::set<std::string> seen{wf.name()};
    std::vector<std::shared_ptr<const Workflow>> held;   // the sub-workflows, kept alive
    std::vector<std::pair<const Workflow*, std::string>> todo{{&wf, ""}};   // with the steps that led there
    while (!todo.empty()) {
        const auto [parent, path] = todo.back();
        todo.pop_back();
        for (std::uint32_t i = 0; i < parent->steps().size(); ++i) {
            if (detail::kind_of(*parent, i) != detail::StepKind::child || stood_in(*parent, i)) continue;
            const std::string child(detail::child_workflow(parent->steps()[i].handler));
            if (!seen.insert(child).second) continue;
            const std::string via = fmt::format("{}workflow \"{}\" step \"{}\" runs workflow \"{}\": ", path,
                                                parent->name(), parent->steps()[i].id, child);
            try {
                held.push_back(workflows_.find(child, std::nullopt));   // resolve_handlers found it
                (void)resolve_handlers(*held.back(), "");
            } catch (const NotFound& e) {
                const std::string_view what = e.what();
                throw NotFound(e.id(), via + std::string(what.substr(what.find("] ") + 2)));
            }
            todo.emplace_back(held.back().get(), via);
        }
    }
    return found;
}

bool Executor::Impl::stood_in(const Workflow& wf, std::uint32_t step) const {
    const auto* stand_in = stand_in_.load();
    return stand_in && stand_in->covers(wf, step);
}

void detail::ExecutorAccess::set_child_stand_in(Executor& executor, ChildStandIn* stand_in) {
    executor.impl_->stand_in_.store(stand_in);
}

std::shared_ptr<RunState> Executor::Impl::make_state(const RunInfo& info,
                                                     std::shared_ptr<const Workflow> wf,
                                                     StepHandlers handlers) {
    auto run = std::make_shared<RunState>();
    // No other thread can see the run yet; the lock costs nothing and lets the
    // thread-safety analysis check every field written here.
    MutexLock lock(run->mutex);
    run->id = info.id;
    run->workflow = std::move(wf);
    run->handlers = std::move(handlers);
    run->input = info.input;
    run->cancel_requested = info.cancel_requested;
    run->priority = info.priority;
    run->paused = info.paused;
    run->cancel_flag = info.cancel_requested;
    const auto& plan = detail::Plan::of(*run->workflow);
    run->steps.resize(plan.steps.size());
    run->start_written = std::vector<std::atomic<bool>>(plan.steps.size());
    for (auto& w : run->start_written) w.store(true, std::memory_order_relaxed);
    if (auto limit = run->workflow->deadline()) run->deadline_at = info.created_at + *limit;
    for (std::uint32_t i = 0; i < info.steps.size(); ++i) {
        auto& slot = run->steps[i];
        const auto& s = info.steps[i];
        slot.attempts = s.attempts;
        slot.attempt_base = s.attempt_base;
        slot.started_at = s.started_at;
        slot.finished_at = s.finished_at;
        slot.error = s.error;
        load_items(*run, i, s);
        const bool handler = detail::kind_of(*run->workflow, i) == detail::StepKind::handler;
        // What may have been in flight when the last process stopped starts
        // exactly: its start may be lost (written lazily) though its handler ran.
        slot.exact = s.status == StepStatus::ready || s.status == StepStatus::waiting ||
                     s.status == StepStatus::running;
        StepStatus status = s.status;
        if (status == StepStatus::running && handler) {
            // Its attempt was in flight when its process stopped: it counts,
            // so a step that kills its process is bounded by its retry policy.
            slot.error = interrupted(s.attempts);
            slot.finished_at = now();
            if (detail::out_of_attempts(slot, run->workflow->retry_of(i)))
                status = StepStatus::failed;
        }
        switch (status) {
            case StepStatus::completed:
                slot.output = s.output;
                [[fallthrough]];
            case StepStatus::skipped:
                slot.status = status;
                run->settled.add();
                break;
            case StepStatus::compensating:
            case StepStatus::compensated:
                slot.output = s.output;
                slot.status = status;
                run->compensate = true;   // the run was being compensated
                break;
            case StepStatus::failed:
                slot.status = status;
                if (run->workflow->on_error_of(i) == OnError::compensate) run->compensate = true;
                if (run->workflow->on_error_of(i) == OnError::proceed) {
                    run->settled.add();
                } else if (!run->stopping) {
                    run->stopping = true;
                    run->outcome = RunStatus::failed;
                    run->error = info.error.empty()
                                     ? fmt::format("step \"{}\" failed: {}", s.step_id, slot.error)
                                     : info.error;
                }
                break;
            case StepStatus::waiting:
            case StepStatus::suspended:
                slot.status = status;
                slot.wake_at = s.wake_at;
                break;
            default:
                // Interrupted with attempts left, or not reached: decided below.
                if (s.status != StepStatus::running) slot.error.clear();
                break;
        }
    }
    if (run->cancel_requested) {
        run->stopping = true;
        run->outcome = RunStatus::cancelled;
        run->error.clear();
    }
    for (std::uint32_t i = 0; i < plan.steps.size(); ++i) {
        auto& slot = run->steps[i];
        if (slot.status == StepStatus::waiting || slot.status == StepStatus::suspended) {
            if (!run->stopping) run->active.add();   // its timer is armed once the run is live
            continue;
        }
        if (slot.status != StepStatus::pending) continue;   // settled, or failed for good
        slot.deps_left = detail::Counter();
        for (auto d : plan.steps[i].deps) {
            const auto dep = run->steps[d].status;
            if (dep != StepStatus::completed && dep != StepStatus::skipped && dep != StepStatus::failed)
                slot.deps_left.add();
        }
    }
    return run;
}

bool Executor::Impl::launch(const std::shared_ptr<RunState>& run, const RunInfo& stored, bool fresh,
                            const char* event, const RunWrite* reopen) {
    if (!live_.add(run)) return false;   // another recover() has it
    // A recovered run: what host threads recorded since recover() read it.
    std::optional<RunInfo> latest;
    std::vector<RunEvent> latest_events;
    if (!fresh && !reopen) {
        try {
            latest = store_.load_run(run->id);
            bool deliveries;
            {
                MutexLock lock(run->mutex);
                deliveries = may_have_deliveries(*run);
            }
            if (deliveries) latest_events = store_.load_events(run->id);
        } catch (const std::exception& e) {
            // Other threads may use the live state already: it goes on. A
            // call they recorded only is then applied at the next recovery
            // (signals and completions by the delivery poll).
            latest.reset();
            report(LogRecord{LogLevel::warn, run->id, "", 0,
                             std::string("recover: reading what came in meanwhile failed: ") + e.what(),
                             std::nullopt});
        }
    }
    CommitWaiter waiter;
    bool must_lead;
    {
        MutexLock lock(run->mutex);
        if (latest) catch_up(*run, stored, *latest, latest_events);
        Queue queue(commits_, run, &waiter);
        auto& writes = queue.writes();
        const auto at = now();
        if (fresh) {
            writes.new_runs.push_back(stored);
            writes.new_runs.back().owner = leases_.identity();
            writes.new_runs.back().lease_until = leases_.lease_end();
        }
        queue.effects().run_began = event;
        if (reopen) writes.runs.push_back(*reopen);
        writes.events.push_back(RunEvent{0, run->id, "", event, 0, "", at});
        if (!fresh && !reopen) {
            for (std::uint32_t i = 0; i < run->steps.size(); ++i) {
                const auto& was = stored.steps[i];
                if (was.status != StepStatus::running ||
                    detail::kind_of(*run->workflow, i) != detail::StepKind::handler)
                    continue;
                // Interrupted with no attempt left: failed, and told so. Its row
                // is written below with the other steps that changed.
                const auto& slot = run->steps[i];
                const char* kind = slot.status == StepStatus::failed ? event::step_failed : event::step_interrupted;
                if (slot.status == StepStatus::failed) tell(i, std::nullopt, slot, kind, slot.error, queue);
                writes.events.push_back(RunEvent{0, run->id, was.step_id, kind, was.attempts, slot.error, at});
            }
        }
        // Steps waiting for nothing: ready, skipped, or (condition error) failed.
        for (std::uint32_t i = 0; i < run->steps.size(); ++i) {
            const auto& slot = run->steps[i];
            if (slot.status == StepStatus::pending && slot.deps_left.none() && !run->stopping &&
                admit(*run, i, queue, /*write_ready=*/false))
                release_dependents(*run, i, queue);
        }
        if (fresh) {
            auto& steps = writes.new_runs.back().steps;
            for (std::uint32_t i = 0; i < steps.size(); ++i) steps[i].status = run->steps[i].status;
        } else {
            for (std::uint32_t i = 0; i < run->steps.size(); ++i)
                // A rerun's reset of stored elements goes in this same commit.
                if (run->steps[i].status != stored.steps[i].status || run->steps[i].reset_items)
                    write_step(*run, i, writes);
        }
        apply_deliveries(*run, queue, /*at_launch=*/true);
        if (run->stopping) cancel_children(*run);   // it stopped before a crash, its children may not have
        queue.effects().arm_timers = true;
        end_run_if_over(*run, queue);
        must_lead = queue.release(true);
    }
    try {
        await_commit(must_lead, waiter);
    } catch (...) {
        live_.remove(*run);
        throw;
    }
    run->owned.store(true);   // its row is this executor's now: renewals keep it
    return true;
}

void Executor::Impl::catch_up(RunState& run, const RunInfo& read, const RunInfo& latest,
                              const std::vector<RunEvent>& events) {
    if (latest.cancel_requested && !run.cancel_requested) {
        run.cancel_requested = true;
        run.cancel_flag = true;
        stop_run(run, RunStatus::cancelled, "");   // its children: launch cancels them
    }
    // Only a change since `read`: a pause() or resume() that found the run
    // live after `latest` was read has set run.paused already.
    if (latest.paused != read.paused) run.paused = latest.paused;
    merge_deliveries(run, events);   // the first of each counts: the ones read before stay
}


// --- public verbs ---

Executor::Executor(Store& store, HandlerRegistry& handlers, ExecutorOptions options)
    : impl_(std::make_unique<Impl>(store, handlers, options)) {
    impl_->arm_delivery_poll();
    Impl& impl = *impl_;
    impl.leases_.start([&impl] { impl.renew_leases(); },
                       options.adopt ? std::function<void()>([&impl] { impl.adopt_orphans(); }) : nullptr,
                       [&impl] {
                           impl.poll_controls();
                           impl.claim_queued();
                       },
                       options.control_poll,
                       options.retention ? std::function<void()>([&impl] { impl.purge_expired(); }) : nullptr,
                       options.retention_every);
}

Executor::~Executor() = default;

void Executor::add_workflow(const Workflow& workflow) {
    impl_->workflows_.add(workflow, /*replace=*/false, impl_->now());
    impl_->forget_runnable();
}

void Executor::replace_workflow(const Workflow& workflow) {
    impl_->workflows_.add(workflow, /*replace=*/true, impl_->now());
    impl_->forget_runnable();
}


void Executor::check(const Workflow& workflow) { (void)impl_->resolve_tree(workflow); }

RunId Executor::start(const std::string& workflow_name, const Json& input, const StartOptions& options) {
    detail::check_payload(input, impl_->options_.payload, "the run's input");
    auto wf = impl_->workflows_.find(workflow_name, options.version);
    // An enqueued run is checked by the executor that claims it.
    auto handlers = options.enqueue ? StepHandlers{} : impl_->resolve_tree(*wf);
    const std::string& key = options.idempotency_key;
    auto begin = [&] {
        return options.enqueue ? impl_->enqueue_run(*wf, input, key, options.priority)
                               : impl_->start_run(wf, handlers, input, key, {}, options.priority);
    };
    if (key.empty()) return begin();

    // One start per key at a time in this process, so that two never race
    // into one batch, where the store's refusal of the second would fail both.
    detail::KeyGate::Hold hold(impl_->starting_keys_, key);
    for (int round = 0;; ++round) {
        if (auto existing = impl_->store_.find_run_by_key(key)) {
            RunInfo info = get_run(*existing);
            if (info.workflow_name != wf->name() || info.input != input) {
                throw Conflict(error_id::run_key_reused,
                               fmt::format("idempotency key \"{}\" started run {} of workflow \"{}\" "
                                           "with input {}; this start asks for workflow \"{}\" with "
                                           "input {}",
                                           key, info.id, info.workflow_name, info.input.dump(),
                                           wf->name(), input.dump()));
            }
            return info.id;
        }
        try {
            return begin();
        } catch (const Conflict& e) {
            // Another process started it first: return that run (once).
            if (e.id() != error_id::run_duplicate_key || round > 0) throw;
        }
    }
}

RunInfo Executor::Impl::new_run(const Workflow& wf, const Json& input, const std::string& idempotency_key,
                                RunId id, int priority) const {
    RunInfo info;
    info.id = id.empty() ? new_run_id() : std::move(id);
    info.workflow_name = wf.name();
    info.workflow_version = wf.version();
    info.workflow_hash = wf.hash();
    info.idempotency_key = idempotency_key;
    info.priority = priority;
    info.input = input;
    info.created_at = info.updated_at = now();
    info.steps.reserve(wf.steps().size());
    for (const auto& step : wf.steps()) {
        info.steps.emplace_back();
        info.steps.back().step_id = step.id;
    }
    return info;
}

RunId Executor::Impl::enqueue_run(const Workflow& wf, const Json& input, const std::string& idempotency_key,
                                  int priority) {
    Batch batch;
    batch.new_runs.push_back(new_run(wf, input, idempotency_key, {}, priority));   // owned by nobody
    const RunInfo& info = batch.new_runs.back();
    batch.events.push_back(RunEvent{0, info.id, "", event::run_enqueued, 0, "", info.created_at});
    store_.commit(batch);
    if (options_.adopt) leases_.poll_soon();   // this executor may claim it itself
    return info.id;
}

RunId Executor::Impl::start_run(std::shared_ptr<const Workflow> wf,
                                StepHandlers handlers, const Json& input,
                                const std::string& idempotency_key, RunId id, int priority) {
    RunInfo info = new_run(*wf, input, idempotency_key, std::move(id), priority);
    auto run = make_state(info, std::move(wf), std::move(handlers));
    launch(run, info, /*fresh=*/true, event::run_started);
    return run->id;
}

std::optional<RunInfo> Executor::wait_for(const RunId& id, std::chrono::milliseconds timeout) {
    using Steady = std::chrono::steady_clock;
    const auto deadline = Steady::now() + timeout;
    auto left = [&] {
        return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()),
                        std::chrono::milliseconds(0));
    };
    bool claims_settled = false;
    for (;;) {
        if (auto run = impl_->live_.find(id)) {
            MutexLock lock(run->mutex);
            if (!run->done_cv.wait_for(run->mutex, left(), [&] {
                    run->mutex.assert_held();
                    return run->done;
                }))
                return std::nullopt;
            if (run->store_error && !Impl::lost_to_another(run->store_error)) std::rethrow_exception(run->store_error);
        }
        RunInfo info = get_run(id);
        if (is_final(info.status)) return info;
        if (impl_->live_.find(id)) continue;   // recovered here meanwhile
        if (auto why = impl_->live_.why_abandoned(id); why && !Impl::lost_to_another(why)) std::rethrow_exception(why);
        // Another executor runs it: its end is read from the store.
        if (!impl_->in_other_hands(info)) {
            // This executor may have claimed it a moment ago: once the claim
            // is done it is live here (or released), so look once more.
            if (!std::exchange(claims_settled, true)) {
                MutexLock settle(impl_->claiming_);
                continue;
            }
            throw Conflict(error_id::run_not_live,
                           "run " + id + " is unfinished but no executor runs it now; call recover()");
        }
        if (left().count() == 0) return std::nullopt;
        std::this_thread::sleep_for(std::min(left(), impl_->options_.control_poll));
    }
}

RunInfo Executor::wait(const RunId& id) {
    for (;;) {
        if (auto info = wait_for(id, std::chrono::hours(24))) return *info;
    }
}

RunInfo Executor::get_run(const RunId& id) {
    auto info = impl_->store_.load_run(id);
    if (!info) throw NotFound(error_id::run_unknown, "run " + id + " does not exist");
    return *info;
}

std::vector<RunInfo> Executor::list_runs(const RunFilter& filter) {
    return impl_->store_.list_runs(filter);
}

std::vector<RunEvent> Executor::history(const RunId& id) {
    (void)get_run(id);   // NotFound for an unknown run, not an empty history
    return impl_->store_.load_events(id);
}

std::vector<LogRecord> Executor::logs(const RunId& id, std::string_view step_id) {
    (void)get_run(id);   // NotFound for an unknown run, not an empty list
    return impl_->store_.load_logs(id, step_id);
}

std::size_t Executor::purge(TimePoint finished_before) { return impl_->purge(finished_before); }

Executor::Impl::RunRequest Executor::Impl::cancel_request(const RunId& id, std::vector<RunId>& children) {
    const auto at = now();
    auto event = [id, at](Queue& queue) {
        queue.writes().events.push_back(RunEvent{0, id, "", event::run_cancel_requested, 0, "", at});
    };
    // Sub-workflow steps in flight: their child runs are cancelled too.
    auto child_of = [&children, id](const Workflow& wf, std::size_t i, StepStatus status) {
        if (status == StepStatus::suspended && detail::kind_of(wf, i) == detail::StepKind::child)
            children.push_back(child_run_id(id, wf, i));
    };
    return {[](RunState& run) LOOM_REQUIRES(run.mutex) -> std::optional<bool> {
                if (run.final_submitted || run.cancel_requested) return !run.final_submitted;
                return std::nullopt;
            },
            [this, event, child_of, id, at](RunState& run, Queue& queue, bool recorded) LOOM_REQUIRES(run.mutex) {
                for (std::size_t i = 0; i < run.steps.size(); ++i) child_of(*run.workflow, i, run.steps[i].status);
                run.cancel_requested = true;
                run.cancel_flag = true;
                stop_run(run, RunStatus::cancelled, "");
                if (!recorded) {
                    queue.writes().runs.push_back(
                        RunWrite{id, RunStatus::running, true, {}, "", at, {}, false, std::nullopt});
                    event(queue);
                }
                end_run_if_over(run, queue);
            },
            [this, child_of](const RunInfo& info) -> std::optional<bool> {
                if (is_final(info.status)) return false;
                if (info.cancel_requested) return true;
                if (auto wf = workflows_.find(info.workflow_name, info.workflow_version))
                    for (std::size_t i = 0; i < info.steps.size(); ++i) child_of(*wf, i, info.steps[i].status);
                return std::nullopt;
            },
            [event, id](const RunInfo&, Queue& queue) {
                queue.writes().controls.push_back(RunControl{id, true, std::nullopt});
                event(queue);
            }};
}

void Executor::Impl::cancel_children(const std::vector<RunId>& children) {
    for (const auto& child : children) {
        try {
            cancel_run(child);
        } catch (const NotFound&) {
            // Not started yet: the parent, stopping, will not start it.
        }
    }
}

bool Executor::Impl::cancel_run(const RunId& id) {
    std::vector<RunId> children;
    const bool result = request(id, cancel_request(id, children));
    cancel_children(children);
    return result;
}

bool Executor::cancel(const RunId& id) { return impl_->cancel_run(id); }

}  // namespace loom
