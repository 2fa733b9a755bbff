// Steps that wait for the outside world: the built-in "wait" step (completed
// by Executor::signal) and handlers that call ctx.suspend() (completed by
// Executor::complete / fail with the attempt's token). Each delivery is
// recorded in the run's history before it acts, so one made while no process
// runs the run — or just before a crash — is replayed by recover().
#include <charconv>
#include <set>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/model.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"

namespace loom {
namespace {

// The name wait step `step` waits for, if its input spells it out: "" for
// none (the step fails when reached), nullopt if it may be any name (a
// ${...} in it, or no input template: the step then reads its dependencies).
std::optional<std::string> literal_signal(const Workflow& wf, std::uint32_t step) {
    const std::optional<Json>& input = wf.steps()[step].input;
    if (!input || !input->is_object()) return std::nullopt;
    auto name = input->find("signal");
    if (name == input->end() || !name->is_string()) return std::string();
    static const Json::json_pointer kSignalKey("/signal");
    for (const detail::Substitution& sub : detail::Plan::of(wf).steps[step].substitutions) {
        if (sub.where != kSignalKey) continue;
        std::string text;   // "$${" is a literal "${": it has a substitution too
        for (const detail::TemplatePart& part : sub.parts) {
            if (part.ref) return std::nullopt;
            text += part.literal;
        }
        return text;
    }
    return name->get<std::string>();
}

}  // namespace

void Executor::Impl::check_signal(const Workflow& wf, const RunId& id, const std::string& name) {
    std::set<std::string> names;
    for (std::uint32_t i = 0; i < wf.steps().size(); ++i) {
        if (detail::kind_of(wf, i) != detail::StepKind::wait) continue;
        const auto awaited = literal_signal(wf, i);
        if (!awaited || *awaited == name) return;
        if (!awaited->empty()) names.insert(*awaited);
    }
    std::string waits_for;
    for (const auto& n : names) waits_for += (waits_for.empty() ? "" : ", ") + detail::quote(n);
    // A wait step of a sub-workflow is its child run's: that is the run to signal.
    std::string hint;
    std::set<std::string> seen{wf.name()};
    std::vector<std::pair<std::shared_ptr<const Workflow>, RunId>> todo;
    auto children_of = [&](const Workflow& parent, const RunId& parent_id) {
        for (std::uint32_t i = 0; i < parent.steps().size(); ++i) {
            if (detail::kind_of(parent, i) != detail::StepKind::child) continue;
            const std::string child(detail::child_workflow(parent.steps()[i].handler));
            if (!seen.insert(child).second) continue;
            try {
                todo.emplace_back(workflows_.find(child, std::nullopt), child_run_id(parent_id, parent, i));
            } catch (const NotFound&) {
                // Not added: its runs cannot start, nor wait.
            }
        }
    };
    children_of(wf, id);
    while (!todo.empty() && hint.empty()) {
        const auto [child, child_id] = todo.front();
        todo.erase(todo.begin());
        for (std::uint32_t i = 0; i < child->steps().size() && hint.empty(); ++i) {
            if (detail::kind_of(*child, i) == detail::StepKind::wait && literal_signal(*child, i) == name)
                hint = fmt::format("; step \"{}\" of sub-workflow \"{}\" waits for it: signal its child run {}",
                                   child->steps()[i].id, child->name(), child_id);
        }
        children_of(*child, child_id);
    }
    throw InvalidArgument(error_id::signal_unknown,
                          fmt::format("run {} (workflow \"{}\" version {}) has no wait step for signal {}; it "
                                      "waits for {}{}",
                                      id, wf.name(), wf.version(), detail::quote(name),
                                      waits_for.empty() ? "no signal" : waits_for, hint));
}

std::string Executor::Impl::awaited_signal(const RunState& run, std::uint32_t step) const {
    const Json input = detail::resolve_input(*run.workflow, step, run.input, detail::steps_of(run.steps));
    auto name = input.is_object() ? input.find("signal") : input.end();
    if (name == input.end() || !name->is_string() || name->get_ref<const std::string&>().empty())
        throw InvalidArgument(error_id::wait_input,
                              "wait step input must be an object with a non-empty string \"signal\", not " +
                                  input.dump());
    if (auto t = input.find("timeout_ms"); t != input.end() && !(t->is_number_integer() && t->get<std::int64_t>() > 0))
        throw InvalidArgument(error_id::wait_input,
                              "wait step input \"timeout_ms\" must be a positive integer, not " + t->dump());
    return name->get<std::string>();
}

bool Executor::Impl::admit_wait(RunState& run, std::uint32_t step, Queue& queue) {
    auto& slot = run.steps[step];
    slot.attempts = 1;   // one attempt, which the signal ends
    slot.started_at = now();
    run.start_written[step].store(true, std::memory_order_relaxed);
    try {
        slot.awaiting = awaited_signal(run, step);
    } catch (const std::exception& e) {
        slot.error = e.what();
        slot.finished_at = slot.started_at;
        return fail_step(run, step, queue);
    }
    if (auto it = run.signals.find(slot.awaiting); it != run.signals.end()) {
        slot.status = StepStatus::completed;   // it came before the step was reached
        slot.output = it->second;
        slot.finished_at = slot.started_at;
        run.settled.add();
        record_step(run, step, queue, event::step_completed, *slot.finished_at, "signal " + slot.awaiting);
        return true;
    }
    const Json input = detail::resolve_input(*run.workflow, step, run.input, detail::steps_of(run.steps));
    if (auto t = input.find("timeout_ms"); t != input.end())
        slot.wake_at = *slot.started_at + std::chrono::milliseconds(t->get<std::int64_t>());
    slot.status = StepStatus::suspended;
    run.active.add();
    record_step(run, step, queue, event::step_suspended, *slot.started_at, "signal " + slot.awaiting);
    wait_after_commit(slot, queue);
    return false;
}

void Executor::Impl::resume(RunState& run, std::uint32_t step, Outcome&& result, Queue& queue) {
    auto& slot = run.steps[step];
    run.active.remove();
    slot.armed = false;   // a pending timeout timer finds the step no longer suspended
    slot.wake_at.reset();
    slot.finished_at = now();
    apply_outcome(run, step, std::move(result), queue);
}

bool Executor::Impl::may_have_deliveries(const RunState& run) {
    for (std::uint32_t i = 0; i < run.steps.size(); ++i)
        if (run.steps[i].status == StepStatus::suspended ||
            detail::kind_of(*run.workflow, i) == detail::StepKind::wait)
            return true;
    return false;
}

void Executor::Impl::load_deliveries(RunState& run) {
    if (may_have_deliveries(run)) merge_deliveries(run, store_.load_events(run.id));
}

bool Executor::Impl::merge_deliveries(RunState& run, const std::vector<RunEvent>& events) {
    bool added = false;
    for (const auto& e : events) {
        if (e.kind == event::signal) {
            // Written by signal(); anything else in the history is not a signal.
            const auto signal = Json::parse(e.detail, nullptr, /*allow_exceptions=*/false);
            const auto name = signal.is_object() ? signal.find("name") : signal.end();
            if (name == signal.end() || !name->is_string()) continue;
            const auto payload = signal.find("payload");
            added |= run.signals.emplace(name->get<std::string>(), payload == signal.end() ? Json() : *payload)
                         .second;
        } else if (e.kind == event::step_complete_requested || e.kind == event::step_fail_requested) {
            const auto at = detail::Plan::of(*run.workflow).step_index(e.step_id);
            if (!at) continue;
            auto [request, first] = run.requested.try_emplace({*at, e.attempt});
            if (!first) continue;   // the first request counts (a completion's output may be null)
            auto& r = request->second;
            if (e.kind == event::step_complete_requested)
                r.first = Json::parse(e.detail, nullptr, false);
            else
                r.second = e.detail.empty() ? "failed by its completion token" : e.detail;
            added = true;
        }
    }
    return added;
}

void Executor::Impl::apply_deliveries(RunState& run, Queue& queue, bool at_launch) {
    if (run.stopping) return;
    for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
        auto& slot = run.steps[i];
        if (slot.status != StepStatus::suspended) continue;
        const auto kind = detail::kind_of(*run.workflow, i);
        if (kind == detail::StepKind::child) {
            if (at_launch) queue.ready(i, Task::Kind::start_child);   // finds the child, or starts it
        } else if (kind == detail::StepKind::wait) {
            try {
                slot.awaiting = awaited_signal(run, i);
            } catch (const std::exception&) {
                continue;   // reached with this input before, so it cannot fail now
            }
            if (auto it = run.signals.find(slot.awaiting); it != run.signals.end()) {
                resume(run, i, Outcome::success(it->second), queue);
            }
        } else if (auto it = run.requested.find({i, slot.attempts}); it != run.requested.end()) {
            auto [output, error] = it->second;
            resume(run, i, Outcome::of(std::move(output), std::move(error)), queue);
        }
    }
}

void Executor::Impl::arm_delivery_poll() {
    if (options_.delivery_poll.count() <= 0) return;
    timers_.add(now() + options_.delivery_poll, [this] { poll_deliveries(); });
}

void Executor::Impl::poll_deliveries() {
    auto runs = live_.all();
    auto awaits_outside = [](const RunState& run) LOOM_REQUIRES(run.mutex) {
        if (run.final_submitted || run.stopping || run.abandoned) return false;
        for (std::uint32_t i = 0; i < run.steps.size(); ++i)
            if (run.steps[i].status == StepStatus::suspended &&
                detail::kind_of(*run.workflow, i) != detail::StepKind::child)
                return true;
        return false;
    };
    bool queued = false;
    for (auto& run : runs) {
        {
            MutexLock lock(run->mutex);
            if (!awaits_outside(*run)) continue;
        }
        try {
            const auto events = store_.load_events(run->id);   // no lock held: store I/O
            MutexLock lock(run->mutex);
            if (!awaits_outside(*run) || !merge_deliveries(*run, events)) continue;
            Queue queue(commits_, run);
            apply_deliveries(*run, queue, /*at_launch=*/false);
            end_run_if_over(*run, queue);
            queue.release(false);
            queued = true;
        } catch (const std::exception& e) {   // on the timer thread: nothing may escape
            report(LogRecord{LogLevel::warn, run->id, "", 0,
                             std::string("looking for deliveries from other processes: ") + e.what(),
                             std::nullopt});   // the next poll tries again
      }
  }
  if (queued) commit_from_timer();
  arm_delivery_poll();
}

bool Executor::Impl::deliver(const RunId& id, RunEvent event, const std::function<void(RunState&)>& check_live,
                           const std::function<void(RunState&, Queue&)>& apply,
                           const std::function<void(const RunInfo&)>& check_stored) {
  event.run_id = id;
  event.at = now();
  return request(id, {[&](RunState& run) LOOM_REQUIRES(run.mutex) -> std::optional<bool> {
                          if (run.final_submitted) return false;
                          check_live(run);
                          return std::nullopt;
                      },
                      [&](RunState& run, Queue& queue, bool recorded) LOOM_REQUIRES(run.mutex) {
                          if (!recorded) queue.writes().events.push_back(event);
                          apply(run, queue);
                          end_run_if_over(run, queue);
                      },
                      [&](const RunInfo& info) -> std::optional<bool> {
                          if (is_final(info.status)) return false;
                          check_stored(info);
                          return std::nullopt;
                      },
                      [&](const RunInfo&, Queue& queue) {
                          queue.writes().events.push_back(event);
                          queue.writes().controls.push_back(RunControl{id, std::nullopt, std::nullopt});
                        }});
}

// --- public verbs ---

bool Executor::signal(const RunId& id, const std::string& name, const Json& payload) {
    if (name.empty()) throw InvalidArgument(error_id::signal_name, "signal name is empty");
    detail::check_payload(payload, impl_->options_.payload, "the signal's payload");
    RunEvent event{0, id, "", loom::event::signal, 0, Json{{"name", name}, {"payload", payload}}.dump(), {}};
    return impl_->deliver(
        id, std::move(event), [&](RunState& run) LOOM_REQUIRES(run.mutex) {
            impl_->check_signal(*run.workflow, id, name);
        },
        [&](RunState& run, Impl::Queue& queue) LOOM_REQUIRES(run.mutex) {
            if (!run.signals.emplace(name, payload).second) return;   // the first counts
            if (run.stopping) return;   // its suspended steps are released already
            for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
                auto& slot = run.steps[i];
                if (slot.status != StepStatus::suspended || slot.awaiting != name) continue;
                impl_->resume(run, i, Outcome::success(payload), queue);
            }
        },
        [&](const RunInfo& info) {
            impl_->check_signal(*impl_->workflows_.find(info.workflow_name, info.workflow_version), id, name);
        });
}

namespace {

struct Token {
    RunId run;
    std::string step;
    int attempt = 0;
};

Token parse_token(const std::string& token) {
    const auto a = token.find('/');
    const auto b = token.rfind('/');
    Token t;
    bool ok = a != std::string::npos && b != a && a > 0 && b > a + 1;
    if (ok) {
        t.run = token.substr(0, a);
        t.step = token.substr(a + 1, b - a - 1);
        auto [ptr, ec] = std::from_chars(token.data() + b + 1, token.data() + token.size(), t.attempt);
        ok = ec == std::errc() && ptr == token.data() + token.size() && t.attempt > 0;
    }
    if (!ok)
        throw InvalidArgument(error_id::token_malformed,
                              "completion token " + detail::quote(token) + " is not \"<run>/<step>/<attempt>\"");
    return t;
}

}  // namespace

void Executor::Impl::finish_by_token(const std::string& token, Json output, std::string error) {
    const Token t = parse_token(token);
    const bool ok = error.empty();
    auto stale = [&] {
        return Conflict(error_id::token_stale,
                        fmt::format("completion token {}: step \"{}\" of run {} is not suspended in attempt {} "
                                    "(it finished, timed out, or the run ended)",
                                    detail::quote(token), t.step, t.run, t.attempt));
    };
    RunEvent event{0, t.run, t.step, ok ? event::step_complete_requested : event::step_fail_requested, t.attempt,
                   ok ? output.dump() : error, {}};
    std::uint32_t step = 0;
    const bool delivered = deliver(
        t.run, std::move(event),
        [&](RunState& run) LOOM_REQUIRES(run.mutex) {
            const auto at = detail::Plan::of(*run.workflow).step_index(t.step);
            if (!at) throw NotFound(error_id::step_unknown, "run " + t.run + " has no step " + detail::quote(t.step));
            step = *at;
            const auto& slot = run.steps[step];
            const auto kind = detail::kind_of(*run.workflow, step);
            // Running: its handler may not have suspended yet (an outside
            // system that answers at once calls back before it returns).
            const bool current = slot.status == StepStatus::suspended || slot.status == StepStatus::running;
            if (!current || slot.attempts != t.attempt || run.stopping || kind == detail::StepKind::wait ||
                kind == detail::StepKind::child)
                throw stale();
        },
        [&](RunState& run, Queue& queue) LOOM_REQUIRES(run.mutex) {
            if (run.steps[step].status == StepStatus::suspended) {
                resume(run, step, Outcome::of(std::move(output), std::move(error)), queue);
                return;
            }
            // Kept for the suspend that follows (apply_outcome); the first counts.
            run.requested.try_emplace({step, t.attempt}, std::move(output), std::move(error));
        },
        [&](const RunInfo& info) {
            const StepInfo* step = info.step(t.step);
            if (!step) throw NotFound(error_id::step_unknown, "run " + t.run + " has no step " + detail::quote(t.step));
            const bool current = step->status == StepStatus::suspended || step->status == StepStatus::running;
            if (!current || step->attempts != t.attempt) throw stale();
        });
    if (!delivered) throw stale();
}

void Executor::complete(const std::string& token, const Json& output) {
    detail::check_payload(output, impl_->options_.payload, "the output");
    impl_->finish_by_token(token, output, "");
}

void Executor::fail(const std::string& token, const std::string& error) {
    impl_->finish_by_token(token, nullptr, error.empty() ? "failed by its completion token" : error);
}

}  // namespace loom
