// Loom on PostgreSQL with several worker processes: steps per second for the
// shapes of issue 11 (one chain of 2,000 no-op steps; 200 runs of a 10-step
// chain), with 1, 2 and 3 workers. A front process (this one) enqueues the runs
// (StartOptions::enqueue) and N worker processes (this binary again, with
// --worker) claim and run them; each worker has its own PostgresStore and
// Executor. Every measurement gets a database of its own, created before and
// dropped after, so that runs never accumulate and the server's transaction
// counters (pg_stat_database.xact_commit) count that measurement alone.
//
//   loom_pg_bench "host=DIR dbname=loom user=postgres" [--repeat N] [--workers 1,2,3]
//                 [--shapes chain,serial,burst] [--threads T] [--max-claimed N]
//                 [--control-poll MS] [--results FILE] [--verbose]
//
// The connection string must be libpq keyword/value text (not a URI): each
// measurement's database is named by appending " dbname=...". Its user needs
// CREATEDB. Wall time runs from just before the first enqueue to the last
// run's completion as its worker saw it (Observer::on_run_finished, after the
// commit that ended it; the steady clock is system-wide, so the processes'
// readings compare). pg_peers.sh runs this beside pgbench and DBOS.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <loom/loom.hpp>
#include <loom/postgres_store.hpp>

#include "shapes.hpp"

namespace {

using loom::bench::chain;
using loom::bench::median;

using Clock = std::chrono::steady_clock;

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// ---- the shapes --------------------------------------------------------------------

struct Shape {
    const char* key;
    const char* label;
    const char* workflow;
    int steps;     // per run
    int runs;
    int clients;   // front threads that enqueue, each its share one after another
};

// "serial" and "burst" are the same 200 runs of a 10-step chain (loom_bench's
// "d10"), enqueued by one thread one after another or by 200 threads at once.
const Shape kShapes[] = {
    {"chain", "chain of 2,000 steps", "pg_chain", 2000, 1, 1},
    {"serial", "200 x 10, enqueued one by one", "pg_ten", 10, 200, 1},
    {"burst", "200 x 10, enqueued by 200 threads", "pg_ten", 10, 200, 200},
};

const Shape* find_shape(const std::string& key) {
    for (const auto& s : kShapes)
        if (key == s.key) return &s;
    return nullptr;
}

// ---- small helpers -----------------------------------------------------------------

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "loom_pg_bench: %s\n", why.c_str());
    std::exit(1);
}

// Writes a whole line with one write(2): lines from several threads never mix
// (a pipe write of less than PIPE_BUF bytes is atomic).
void put_line(int fd, const std::string& line) {
    const std::string text = line + "\n";
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
}

// CPU seconds (user + system) a process has used, from /proc; -1 if it is gone.
double process_cpu(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) return -1;
    const auto close = text.rfind(')');   // the command name may hold spaces
    if (close == std::string::npos) return -1;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return s(u.ru_utime) + s(u.ru_stime);
}

// ---- the store, counted: which verbs a worker calls and how long they take ---------

enum Verb { kCommit, kClaim, kLoadRun, kLoadEvents, kControlled, kRenew, kRelease, kOwners, kUnfinished,
            kListRuns, kWorkflows, kOther, kVerbs };
const char* const kVerbNames[kVerbs] = {"commit",  "claim_runs", "load_run",       "load_events",
                                        "controlled_runs", "renew_leases", "release_runs", "run_owners",
                                        "unfinished_runs", "list_runs", "list_workflows", "other"};

struct TimedStore : loom::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::array<std::atomic<long>, kVerbs> calls{}, nanos{};
    std::atomic<long> step_writes{0}, events{0};

    void reset() {
        for (auto& c : calls) c = 0;
        for (auto& n : nanos) n = 0;
        step_writes = 0;
        events = 0;
    }
    template <class F>
    auto timed(Verb verb, F&& f) {
        struct Tally {
            TimedStore& store;
            Verb verb;
            std::int64_t began = steady_ns();
            ~Tally() {
                ++store.calls[verb];
                store.nanos[verb] += static_cast<long>(steady_ns() - began);
            }
        } tally{*this, verb};
        return f();
    }

    bool save_workflow(const loom::WorkflowRecord& w) override {
        return timed(kOther, [&] { return StoreWrapper::save_workflow(w); });
    }
    std::optional<loom::WorkflowRecord> load_workflow(std::string_view name,
                                                      std::optional<std::int64_t> version) override {
        return timed(kWorkflows, [&] { return StoreWrapper::load_workflow(name, version); });
    }
    std::vector<loom::WorkflowRecord> list_workflows() override {
        return timed(kWorkflows, [&] { return StoreWrapper::list_workflows(); });
    }
    void commit(const loom::Batch& b) override {
        timed(kCommit, [&] { StoreWrapper::commit(b); });
        step_writes += static_cast<long>(b.steps.size());
        events += static_cast<long>(b.events.size());
    }
    std::optional<loom::RunInfo> load_run(const loom::RunId& id) override {
        return timed(kLoadRun, [&] { return StoreWrapper::load_run(id); });
    }
    std::vector<loom::RunInfo> list_runs(const loom::RunFilter& f) override {
        return timed(kListRuns, [&] { return StoreWrapper::list_runs(f); });
    }
    std::vector<loom::RunId> unfinished_runs() override {
        return timed(kUnfinished, [&] { return StoreWrapper::unfinished_runs(); });
    }
    std::vector<loom::RunEvent> load_events(const loom::RunId& id) override {
        return timed(kLoadEvents, [&] { return StoreWrapper::load_events(id); });
    }
    std::vector<loom::RunId> claim_runs(const loom::ClaimRequest& r) override {
        return timed(kClaim, [&] { return StoreWrapper::claim_runs(r); });
    }
    std::vector<loom::RunId> renew_leases(const std::string& owner, const std::vector<loom::RunId>& ids,
                                          loom::TimePoint until) override {
        return timed(kRenew, [&] { return StoreWrapper::renew_leases(owner, ids, until); });
    }
    void release_runs(const std::string& owner, const std::vector<loom::RunId>& ids) override {
        timed(kRelease, [&] { StoreWrapper::release_runs(owner, ids); });
    }
    std::vector<std::string> run_owners() override {
        return timed(kOwners, [&] { return StoreWrapper::run_owners(); });
    }
    std::vector<loom::RunId> controlled_runs(const std::string& owner, std::int64_t& mark) override {
        return timed(kControlled, [&] { return StoreWrapper::controlled_runs(owner, mark); });
    }
};

// ---- options -----------------------------------------------------------------------

struct Options {
    std::string url;
    int repeat = 3;
    std::vector<int> workers{1, 2, 3};
    std::vector<const Shape*> shapes;
    unsigned threads = 2;          // per worker (the machine's cores)
    std::size_t max_claimed = 0;   // 0: the executor's default (twice threads)
    int control_poll_ms = 0;       // 0: the executor's default (100 ms)
    std::string results;           // a file for pg_peers.sh
    bool verbose = false;
    // Worker mode.
    bool worker = false;
    const Shape* shape = nullptr;
};

std::vector<std::string> split(const std::string& text, char by) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string part; std::getline(in, part, by);)
        if (!part.empty()) out.push_back(part);
    return out;
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: loom_pg_bench CONNINFO [--repeat N] [--workers 1,2,3] [--shapes chain,serial,burst]\n"
                 "                     [--threads T] [--max-claimed N] [--control-poll MS] [--results FILE]\n"
                 "                     [--verbose]\n"
                 "CONNINFO: libpq keyword/value text, e.g. \"host=/tmp/pg dbname=loom user=postgres\"\n");
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--repeat") o.repeat = std::max(1, std::atoi(value().c_str()));
        else if (a == "--workers") {
            o.workers.clear();
            for (const auto& w : split(value(), ',')) o.workers.push_back(std::max(1, std::atoi(w.c_str())));
        } else if (a == "--shapes") {
            for (const auto& s : split(value(), ',')) {
                const Shape* shape = find_shape(s);
                if (!shape) usage();
                o.shapes.push_back(shape);
            }
        } else if (a == "--threads") o.threads = static_cast<unsigned>(std::max(1, std::atoi(value().c_str())));
        else if (a == "--max-claimed") o.max_claimed = static_cast<std::size_t>(std::atoi(value().c_str()));
        else if (a == "--control-poll") o.control_poll_ms = std::atoi(value().c_str());
        else if (a == "--results") o.results = value();
        else if (a == "--verbose") o.verbose = true;
        else if (a == "--worker") o.worker = true;
        else if (a == "--shape") {
            o.shape = find_shape(value());
            if (!o.shape) usage();
        } else if (!a.empty() && a[0] != '-' && o.url.empty()) o.url = a;
        else usage();
    }
    if (o.url.empty()) usage();
    if (o.shapes.empty())
        for (const auto& s : kShapes) o.shapes.push_back(&s);
    return o;
}

loom::ExecutorOptions worker_options(const Options& o, loom::Observer* observer) {
    loom::ExecutorOptions e;
    e.threads = o.threads;
    e.max_claimed = o.max_claimed;
    if (o.control_poll_ms > 0) e.control_poll = std::chrono::milliseconds(o.control_poll_ms);
    e.observer = observer;
    return e;
}

// ---- a worker process ----------------------------------------------------------------

// Tells the front each run's end: "fin <steady ns> <status>".
struct Finishes : loom::Observer {
    void on_run_finished(const loom::RunId&, loom::RunStatus status, const std::string& error) override {
        put_line(1, "fin " + std::to_string(steady_ns()) + " " + std::string(loom::to_string(status)));
        if (status != loom::RunStatus::completed) std::fprintf(stderr, "worker: a run failed: %s\n", error.c_str());
    }
    void on_log(const loom::LogRecord& r) override {
        if (r.level >= loom::LogLevel::warn) std::fprintf(stderr, "worker %d: %s\n", ::getpid(), r.message.c_str());
    }
};

// Protocol on stdin/stdout: prints "ready" once its executor is up; "go" on
// stdin starts the counters (the front enqueues right after); end of stdin
// (the front has seen every run end) makes it print "stats ..." and
// "unfinished N" (what the store still holds, which must be 0) and exit.
int worker_main(const Options& o) {
    try {
        loom::PostgresStore postgres(o.url);
        TimedStore store(postgres);
        loom::HandlerRegistry handlers;
        handlers.add("noop", [](loom::StepContext&) -> loom::Json { return nullptr; });
        Finishes finishes;
        {
            loom::Executor executor(store, handlers, worker_options(o, &finishes));
            executor.add_workflow(chain(o.shape->workflow, o.shape->steps));
            put_line(1, "ready");
            std::string line;
            char c;
            for (;;) {
                const ssize_t n = ::read(0, &c, 1);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                if (c != '\n') {
                    line += c;
                    continue;
                }
                if (line == "go") store.reset();
                line.clear();
            }
            std::string stats = "stats steps=" + std::to_string(store.step_writes.load()) +
                                " events=" + std::to_string(store.events.load());
            for (int v = 0; v < kVerbs; ++v)
                stats += " " + std::string(kVerbNames[v]) + "=" + std::to_string(store.calls[v].load()) + ":" +
                         std::to_string(store.nanos[v].load());
            put_line(1, stats);
            put_line(1, "unfinished " + std::to_string(store.unfinished_runs().size()));
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker %d: %s\n", ::getpid(), e.what());
        return 1;
    }
}

// ---- the front: worker processes --------------------------------------------------------

struct Worker {
    pid_t pid = -1;
    int in = -1;    // its stdin (we write)
    int out = -1;   // its stdout (we read)
    std::string buffer;
    bool eof = false;
    int finished = 0;
    std::int64_t last_ns = 0;
    std::vector<std::string> stats;
    long unfinished = -1;
};

std::string self_exe() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) die("cannot read /proc/self/exe");
    path[n] = '\0';
    return path;
}

Worker spawn_worker(const std::vector<std::string>& args) {
    int to[2], from[2];
    if (::pipe2(to, O_CLOEXEC) != 0 || ::pipe2(from, O_CLOEXEC) != 0) die("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        ::dup2(to[0], 0);
        ::dup2(from[1], 1);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        std::_Exit(127);
    }
    ::close(to[0]);
    ::close(from[1]);
    Worker w;
    w.pid = pid;
    w.in = to[1];
    w.out = from[0];
    return w;
}

// Reads what the workers wrote until `done()` holds, handling each line;
// dies past the deadline or if a worker ends early.
template <class Done, class Handle>
void read_workers(std::vector<Worker>& workers, Clock::time_point deadline, Done done, Handle handle) {
    while (!done()) {
        std::vector<pollfd> fds;
        std::vector<Worker*> who;
        for (auto& w : workers)
            if (!w.eof) {
                fds.push_back({w.out, POLLIN, 0});
                who.push_back(&w);
            }
        if (fds.empty()) die("every worker ended before the measurement did");
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) die("timed out waiting for the workers");
        const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left, 1000)));
        if (n < 0 && errno != EINTR) die("poll failed");
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            Worker& w = *who[i];
            char chunk[4096];
            const ssize_t got = ::read(w.out, chunk, sizeof chunk);
            if (got <= 0) {
                w.eof = true;
                continue;
            }
            w.buffer.append(chunk, static_cast<std::size_t>(got));
            for (std::size_t nl; (nl = w.buffer.find('\n')) != std::string::npos;) {
                const std::string line = w.buffer.substr(0, nl);
                w.buffer.erase(0, nl + 1);
                handle(w, line);
            }
        }
    }
}

// ---- the front: the server's counters ----------------------------------------------------

struct ServerCounters {
    long xact_commit = 0, xact_rollback = 0;
    long wal_sync = 0, wal_write = 0, wal_records = 0;
};

ServerCounters read_counters(pqxx::connection& admin, const std::string& db) {
    pqxx::nontransaction tx(admin);
    ServerCounters c;
    const auto r = tx.exec_params(
        "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", db);
    if (!r.empty()) {
        c.xact_commit = r[0][0].as<long>();
        c.xact_rollback = r[0][1].as<long>();
    }
    const auto w = tx.exec("SELECT wal_sync, wal_write, wal_records FROM pg_stat_wal");
    c.wal_sync = w[0][0].as<long>();
    c.wal_write = w[0][1].as<long>();
    c.wal_records = w[0][2].as<long>();
    return c;
}

// CPU seconds of every process of the cluster that pg_stat_activity lists
// (backends and background processes), by pid.
std::map<long, double> server_cpu(pqxx::connection& admin) {
    pqxx::nontransaction tx(admin);
    std::map<long, double> out;
    for (const auto& row : tx.exec("SELECT pid FROM pg_stat_activity")) {
        const long pid = row[0].as<long>();
        const double cpu = process_cpu(pid);
        if (cpu >= 0) out[pid] = cpu;
    }
    return out;
}

double cpu_delta(const std::map<long, double>& before, const std::map<long, double>& after) {
    double sum = 0;
    for (const auto& [pid, cpu] : after) {
        auto it = before.find(pid);
        sum += cpu - (it == before.end() ? 0 : it->second);
    }
    return sum;
}

// ---- the front: one measurement ------------------------------------------------------------

struct Measurement {
    double wall = 0;          // s, first enqueue to last completion
    double enqueue = 0;       // s, first enqueue to last enqueue returned
    double steps_per_s = 0;
    long steps = 0;
    long xact = 0, rollbacks = 0, wal_syncs = 0, wal_writes = 0;
    double cpu_server = 0, cpu_workers = 0, cpu_front = 0;
    std::vector<int> shares;          // runs per worker
    std::array<long, kVerbs> calls{}, nanos{};
    long step_writes = 0, events = 0;
};

Measurement measure(const Options& o, const Shape& shape, int nworkers, pqxx::connection& admin) {
    static int counter = 0;
    const std::string db = "loom_bench_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    {
        pqxx::nontransaction tx(admin);
        tx.exec("DROP DATABASE IF EXISTS " + db);
        tx.exec("CREATE DATABASE " + db);
    }
    const std::string url = o.url + " dbname=" + db;
    Measurement m;
    m.steps = static_cast<long>(shape.steps) * shape.runs;
    ServerCounters before, after;
    {
        loom::PostgresStore store(url);
        loom::HandlerRegistry none;   // a front end: it enqueues, never runs
        loom::ExecutorOptions front_options;
        front_options.threads = 1;
        front_options.adopt = false;
        loom::Executor front(store, none, front_options);
        const loom::Workflow wf = chain(shape.workflow, shape.steps);
        front.add_workflow(wf);

        std::vector<Worker> workers;
        const std::string exe = self_exe();
        for (int i = 0; i < nworkers; ++i) {
            std::vector<std::string> args{exe, "--worker", url, "--shape", shape.key, "--threads",
                                          std::to_string(o.threads), "--max-claimed", std::to_string(o.max_claimed),
                                          "--control-poll", std::to_string(o.control_poll_ms)};
            workers.push_back(spawn_worker(args));
        }
        int ready = 0;
        read_workers(workers, Clock::now() + std::chrono::seconds(60), [&] { return ready == nworkers; },
                     [&](Worker&, const std::string& line) {
                         if (line == "ready") ++ready;
                     });
        // Let the backends' statistics settle: a busy backend reports its
        // counters at most once a second.
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
        before = read_counters(admin, db);
        const auto cpu_before = server_cpu(admin);
        std::vector<double> worker_cpu_before;
        for (const auto& w : workers) worker_cpu_before.push_back(process_cpu(w.pid));
        const double front_cpu_before = self_cpu();
        for (const auto& w : workers) put_line(w.in, "go");

        const std::int64_t t0 = steady_ns();
        {
            std::vector<std::thread> clients;
            std::atomic<bool> failed{false};
            const int per_client = shape.runs / shape.clients;
            for (int c = 0; c < shape.clients; ++c)
                clients.emplace_back([&] {
                    try {
                        loom::StartOptions enqueue;
                        enqueue.enqueue = true;
                        for (int i = 0; i < per_client; ++i) front.start(shape.workflow, loom::Json::object(), enqueue);
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "enqueue failed: %s\n", e.what());
                        failed = true;
                    }
                });
            for (auto& t : clients) t.join();
            if (failed) die("enqueueing failed");
        }
        m.enqueue = static_cast<double>(steady_ns() - t0) / 1e9;

        int finished = 0;
        read_workers(workers, Clock::now() + std::chrono::seconds(600), [&] { return finished == shape.runs; },
                     [&](Worker& w, const std::string& line) {
                         if (line.rfind("fin ", 0) != 0) return;
                         std::istringstream in(line.substr(4));
                         std::int64_t at = 0;
                         std::string status;
                         in >> at >> status;
                         if (status != "completed") die("a run ended " + status);
                         ++finished;
                         ++w.finished;
                         w.last_ns = std::max(w.last_ns, at);
                     });
        std::int64_t last = t0;
        for (const auto& w : workers) last = std::max(last, w.last_ns);
        m.wall = static_cast<double>(last - t0) / 1e9;
        m.steps_per_s = static_cast<double>(m.steps) / m.wall;
        m.cpu_server = cpu_delta(cpu_before, server_cpu(admin));
        for (std::size_t i = 0; i < workers.size(); ++i)
            m.cpu_workers += process_cpu(workers[i].pid) - worker_cpu_before[i];
        m.cpu_front = self_cpu() - front_cpu_before;

        // Done: the workers report what they did and stop.
        for (auto& w : workers) {
            ::close(w.in);
            w.in = -1;
        }
        read_workers(workers, Clock::now() + std::chrono::seconds(120),
                     [&] { return std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.eof; }); },
                     [&](Worker& w, const std::string& line) {
                         if (line.rfind("stats ", 0) == 0) w.stats = split(line.substr(6), ' ');
                         if (line.rfind("unfinished ", 0) == 0) w.unfinished = std::atol(line.c_str() + 11);
                     });
        for (auto& w : workers) {
            int status = 0;
            ::waitpid(w.pid, &status, 0);
            ::close(w.out);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("a worker failed");
            if (w.unfinished != 0) die("a worker saw unfinished runs at the end");
            m.shares.push_back(w.finished);
            for (const auto& kv : w.stats) {
                const auto eq = kv.find('=');
                if (eq == std::string::npos) continue;
                const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
                if (key == "steps") m.step_writes += std::atol(value.c_str());
                else if (key == "events") m.events += std::atol(value.c_str());
                for (int v = 0; v < kVerbs; ++v)
                    if (key == kVerbNames[v]) {
                        const auto colon = value.find(':');
                        m.calls[v] += std::atol(value.substr(0, colon).c_str());
                        m.nanos[v] += std::atol(value.substr(colon + 1).c_str());
                    }
            }
        }
    }   // the front's executor and store close here

    // Every connection to the database is gone once its backend has reported
    // its counters (a backend reports them as it exits).
    for (int i = 0;; ++i) {
        pqxx::nontransaction tx(admin);
        if (tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db)[0][0].as<long>() == 0) break;
        if (i == 500) die("connections to " + db + " did not close");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    after = read_counters(admin, db);
    m.xact = after.xact_commit - before.xact_commit;
    m.rollbacks = after.xact_rollback - before.xact_rollback;
    m.wal_syncs = after.wal_sync - before.wal_sync;
    m.wal_writes = after.wal_write - before.wal_write;

    // What the workers did is in the database: every run and step completed.
    {
        pqxx::connection check(url);
        pqxx::nontransaction tx(check);
        const long runs = tx.exec("SELECT count(*) FROM workflow_runs WHERE status = 'completed'")[0][0].as<long>();
        const long steps = tx.exec("SELECT count(*) FROM step_runs WHERE status = 'completed'")[0][0].as<long>();
        if (runs != shape.runs || steps != m.steps)
            die("the database holds " + std::to_string(runs) + " completed runs and " + std::to_string(steps) +
                " completed steps, not " + std::to_string(shape.runs) + " and " + std::to_string(m.steps));
    }
    {
        pqxx::nontransaction tx(admin);
        tx.exec("DROP DATABASE " + db + " WITH (FORCE)");
    }
    return m;
}

std::string shares_text(const std::vector<int>& shares) {
    std::string out;
    for (std::size_t i = 0; i < shares.size(); ++i) out += (i ? "/" : "") + std::to_string(shares[i]);
    return out;
}

int front_main(const Options& o) {
    pqxx::connection admin(o.url);
    {
        pqxx::nontransaction tx(admin);
        std::printf("Loom on PostgreSQL (%s), %s\n", o.url.c_str(),
                    tx.exec("SHOW server_version")[0][0].c_str());
    }
    std::printf("workers: %u threads each, max_claimed %s, control_poll %s; a fresh database per measurement; "
                "%d repetitions\n\n",
                o.threads, o.max_claimed ? std::to_string(o.max_claimed).c_str() : "default",
                o.control_poll_ms ? (std::to_string(o.control_poll_ms) + " ms").c_str() : "default", o.repeat);
    std::printf("%-34s %3s %3s %9s %8s %8s %7s %7s %7s  %-14s %s\n", "shape", "w", "rep", "steps/s", "wall s",
                "enq s", "tx/step", "sync/st", "cores", "runs/worker", "cpu server/workers/front s");
    std::fflush(stdout);

    std::map<std::pair<const Shape*, int>, std::vector<Measurement>> all;
    // Repetitions outermost, so that a drift of the machine spreads over
    // every shape and worker count.
    for (int rep = 1; rep <= o.repeat; ++rep)
        for (const Shape* shape : o.shapes)
            for (int w : o.workers) {
                const Measurement m = measure(o, *shape, w, admin);
                std::printf("%-34s %3d %3d %9.0f %8.3f %8.3f %7.2f %7.2f %7.2f  %-14s %.2f/%.2f/%.2f\n", shape->label,
                            w, rep, m.steps_per_s, m.wall, m.enqueue, double(m.xact) / double(m.steps),
                            double(m.wal_syncs) / double(m.steps),
                            (m.cpu_server + m.cpu_workers + m.cpu_front) / m.wall, shares_text(m.shares).c_str(),
                            m.cpu_server, m.cpu_workers, m.cpu_front);
                if (o.verbose) {
                    std::printf("    workers' store calls (count, mean ms):");
                    for (int v = 0; v < kVerbs; ++v)
                        if (m.calls[v])
                            std::printf(" %s %ld %.3f;", kVerbNames[v], m.calls[v],
                                        double(m.nanos[v]) / 1e6 / double(m.calls[v]));
                    std::printf("\n    %ld step writes and %ld events in %ld commits; %ld server transactions "
                                "(%ld rolled back), %ld WAL writes, %ld WAL syncs\n",
                                m.step_writes, m.events, m.calls[kCommit], m.xact, m.rollbacks, m.wal_writes,
                                m.wal_syncs);
                }
                std::fflush(stdout);
                all[{shape, w}].push_back(m);
            }

    std::printf("\nSummary: median (min-max) of %d\n", o.repeat);
    std::printf("%-34s %3s %24s %10s %8s %8s\n", "shape", "w", "steps/s", "wall s", "tx/step", "sync/st");
    std::FILE* results = o.results.empty() ? nullptr : std::fopen(o.results.c_str(), "a");
    for (const Shape* shape : o.shapes)
        for (int w : o.workers) {
            const auto& ms = all[{shape, w}];
            std::vector<double> rate, wall, tx, sync;
            for (const auto& m : ms) {
                rate.push_back(m.steps_per_s);
                wall.push_back(m.wall);
                tx.push_back(double(m.xact) / double(m.steps));
                sync.push_back(double(m.wal_syncs) / double(m.steps));
            }
            const double lo = *std::min_element(rate.begin(), rate.end());
            const double hi = *std::max_element(rate.begin(), rate.end());
            char range[64];
            std::snprintf(range, sizeof range, "%.0f (%.0f-%.0f)", median(rate), lo, hi);
            std::printf("%-34s %3d %24s %10.3f %8.2f %8.2f\n", shape->label, w, range, median(wall), median(tx),
                        median(sync));
            if (results)
                std::fprintf(results, "loom %s %d %.0f %.0f %.0f %.2f\n", shape->key, w, median(rate), lo, hi,
                             median(tx));
        }
    if (results) std::fclose(results);
    std::printf("\nsteps/s: all steps of the shape over the wall time from the first enqueue to the last run's "
                "end.\ntx/step: server transactions committed in the measurement's database (pg_stat_database) "
                "per step, enqueues, polls and claims included.\nsync/st: WAL syncs of the whole cluster "
                "(pg_stat_wal) per step. cores: CPU seconds of server, workers and front per wall second.\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    if (o.worker) {
        if (!o.shape) usage();
        return worker_main(o);
    }
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return front_main(o);
    } catch (const std::exception& e) {
        die(e.what());
    }
}
