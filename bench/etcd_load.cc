// chorus-etcd-load: a load generator on the etcd v3 gRPC API, so the same load drives etcd and
// Chorus. Closed loop: each client keeps one request in flight and sends the next when the
// answer comes; clients share a chosen number of connections, spread round robin over the
// endpoints. Asynchronous (one completion queue per thread), so a thousand clients cost a
// thousand small structs, not a thousand threads.
//
//   chorus-etcd-load --endpoints 127.0.0.1:2379,... --scenario put --clients 256 --conns 32
//                    [--seconds 8] [--warmup 2] [--value-size 256] [--keys 100000]
//                    [--server-pids 1,2,3] [--watchers 1000] [--rate 100]
//
// Scenarios:
//   put         Put of a random key of --keys with a --value-size value.
//   get         Range of one random key (written first, once each); linearizable.
//   get-serial  the same, serializable (answered by the member the client talks to).
//   txn         Txn: if the key's mod_revision is the one the client last wrote, put it. Each
//               client has its own key, so every compare should succeed; a failed one is counted.
//   mix         90 % linearizable gets, 10 % puts, over the same keys.
//   watch       --watchers watch streams on one prefix; a writer puts --rate values a second,
//               each carrying its send time; latency is from the put's send to each delivery.
//   group-put   Chorus's data groups (chorus/groups.proto): a put of a random key of --keys in
//               a random one of --groups groups (2 .. groups+1). Chorus only.
//
// Prints one JSON object on stdout: throughput, latency percentiles in microseconds, errors, and
// with --server-pids the CPU time those processes used during the measured window and their
// peak resident memory. Only requests sent and answered inside the measured window count.
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chorus/groups.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace chorus::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace pb = etcdserverpb;
namespace gpb = chorus::groups::v1;

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "chorus-etcd-load: %s\n"
               "usage: chorus-etcd-load --endpoints H:P[,H:P...] --scenario "
               "put|get|get-serial|txn|mix|watch|group-put\n"
               "  [--clients N] [--conns N] [--threads N] [--seconds S] [--warmup S]\n"
               "  [--value-size B] [--keys N] [--watchers N] [--rate PUTS_PER_S]\n"
               "  [--server-pids P,P,...] [--timeout-ms MS] [--groups N]\n"
               "  [--cacert FILE [--cert FILE --key FILE]]  (TLS, as etcdctl's flags)\n",
               why.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

struct Options {
  std::vector<std::string> endpoints;
  std::string scenario;
  int clients = 16;
  int conns = 0;  // 0: min(clients, 32)
  int threads = 1;
  double seconds = 8;
  double warmup = 2;
  int value_size = 256;
  int keys = 100000;
  int watchers = 1000;
  double rate = 100;
  int timeout_ms = 10000;
  int groups = 1;
  std::vector<int> server_pids;
  // TLS to https endpoints: the CA that signed the members' certificates, and a client
  // certificate and key to present.
  std::string cacert;
  std::string cert;
  std::string key;
};

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string> v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("a load generator on the etcd v3 API");
    if (a.rfind("--", 0) != 0) usage("unexpected argument " + a);
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      v[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      v[a.substr(2)] = argv[++i];
    } else {
      usage(a + " needs a value");
    }
  }
  auto take_int = [&](const char* name, int* out, int min) {
    auto it = v.find(name);
    if (it == v.end()) return;
    char* end = nullptr;
    long x = std::strtol(it->second.c_str(), &end, 10);
    if (*end != '\0' || x < min || x > 1 << 30) usage(std::string("bad --") + name);
    *out = static_cast<int>(x);
    v.erase(it);
  };
  auto take_double = [&](const char* name, double* out, double min) {
    auto it = v.find(name);
    if (it == v.end()) return;
    char* end = nullptr;
    double x = std::strtod(it->second.c_str(), &end);
    if (*end != '\0' || !(x >= min)) usage(std::string("bad --") + name);
    *out = x;
    v.erase(it);
  };
  if (auto it = v.find("endpoints"); it != v.end()) {
    o.endpoints = split(it->second, ',');
    v.erase(it);
  }
  if (auto it = v.find("scenario"); it != v.end()) {
    o.scenario = it->second;
    v.erase(it);
  }
  for (auto [name, out] : {std::pair<const char*, std::string*>{"cacert", &o.cacert},
                           {"cert", &o.cert},
                           {"key", &o.key}}) {
    if (auto it = v.find(name); it != v.end()) {
      *out = it->second;
      v.erase(it);
    }
  }
  if (o.cert.empty() != o.key.empty()) usage("--cert and --key go together");
  if (!o.cert.empty() && o.cacert.empty()) usage("--cert needs --cacert");
  if (auto it = v.find("server-pids"); it != v.end()) {
    for (const auto& p : split(it->second, ','))
      o.server_pids.push_back(std::atoi(p.c_str()));
    v.erase(it);
  }
  take_int("clients", &o.clients, 1);
  take_int("conns", &o.conns, 0);
  take_int("threads", &o.threads, 1);
  take_int("value-size", &o.value_size, 24);
  take_int("keys", &o.keys, 1);
  take_int("watchers", &o.watchers, 1);
  take_int("timeout-ms", &o.timeout_ms, 1);
  take_int("groups", &o.groups, 1);
  take_double("seconds", &o.seconds, 0.1);
  take_double("warmup", &o.warmup, 0);
  take_double("rate", &o.rate, 0.1);
  if (!v.empty()) usage("unknown option --" + v.begin()->first);
  if (o.endpoints.empty()) usage("--endpoints is required");
  static const std::vector<std::string> kScenarios = {"put", "get",   "get-serial", "txn",
                                                      "mix", "watch", "group-put"};
  if (std::find(kScenarios.begin(), kScenarios.end(), o.scenario) == kScenarios.end()) {
    usage("unknown --scenario '" + o.scenario + "'");
  }
  if (o.conns == 0) o.conns = std::min(o.clients, 32);
  return o;
}

// Latencies in nanoseconds, in buckets of about 1.5 % (64 per power of two), merged per thread.
class Histogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }
  void merge(const Histogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }
  // The upper edge of the bucket holding the q-quantile.
  uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSub = 64;
  static size_t index(uint64_t ns) {
    if (ns < kSub) return ns;
    int e = 63 - std::countl_zero(ns);  // >= 6
    int shift = e - 6;
    return static_cast<size_t>((shift + 1) * kSub) + ((ns >> shift) - kSub);
  }
  static uint64_t upper(size_t i) {
    if (i < kSub) return i;
    size_t shift = i / kSub - 1;
    uint64_t sub = i % kSub + kSub;
    return ((sub + 1) << shift) - 1;
  }
  std::array<uint64_t, 64 * kSub> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

// gRPC takes deadlines on the system clock.
std::chrono::system_clock::time_point after_ms(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

grpc::ChannelArguments channel_args() {
  grpc::ChannelArguments args;
  // Each channel its own TCP connection (by default equal channels share one).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(INT32_MAX);
  return args;
}

struct Conn {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<gpb::Groups::Stub> groups;
};

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) usage("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<grpc::ChannelCredentials> credentials(const Options& o) {
  if (o.cacert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_whole(o.cacert);
  if (!o.cert.empty()) {
    ssl.pem_cert_chain = read_whole(o.cert);
    ssl.pem_private_key = read_whole(o.key);
  }
  return grpc::SslCredentials(ssl);
}

std::vector<Conn> connect(const Options& o) {
  std::vector<Conn> conns;
  std::shared_ptr<grpc::ChannelCredentials> creds = credentials(o);
  for (int i = 0; i < o.conns; ++i) {
    Conn c;
    const std::string& ep = o.endpoints[static_cast<size_t>(i) % o.endpoints.size()];
    c.channel = grpc::CreateCustomChannel(ep, creds, channel_args());
    if (!c.channel->WaitForConnected(after_ms(10000))) {
      std::fprintf(stderr, "chorus-etcd-load: cannot connect to %s\n", ep.c_str());
      std::exit(1);
    }
    c.kv = pb::KV::NewStub(c.channel);
    c.watch = pb::Watch::NewStub(c.channel);
    c.groups = gpb::Groups::NewStub(c.channel);
    conns.push_back(std::move(c));
  }
  return conns;
}

std::string key_name(const char* prefix, uint64_t i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%010llu", prefix, static_cast<unsigned long long>(i));
  return buf;
}

// CPU seconds (user + system) and peak resident memory (VmHWM) of the server processes.
struct ProcSample {
  double cpu_seconds = 0;
  uint64_t peak_rss_bytes = 0;
};

ProcSample sample_procs(const std::vector<int>& pids) {
  ProcSample s;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (int pid : pids) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
      std::fprintf(stderr, "chorus-etcd-load: no process %d\n", pid);
      std::exit(1);
    }
    // Fields after the command (which may hold spaces) start after the last ')'.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::vector<std::string> f;
    std::string x;
    while (rest >> x)
      f.push_back(x);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here (state is field 3).
    s.cpu_seconds += (std::stod(f.at(11)) + std::stod(f.at(12))) / tick;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) s.peak_rss_bytes += std::stoull(line.substr(6)) * 1024;
    }
  }
  return s;
}

// The window only replies to requests sent inside it count in.
struct Window {
  std::atomic<int64_t> begin_ns{INT64_MAX};
  std::atomic<int64_t> end_ns{INT64_MAX};
  std::atomic<bool> stop{false};
  bool contains(int64_t sent, int64_t done) const {
    return sent >= begin_ns.load(std::memory_order_relaxed) &&
           done <= end_ns.load(std::memory_order_relaxed);
  }
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// ----- Unary scenarios ------------------------------------------------------------------------

enum class OpKind { kPut, kGet, kTxn };

struct Counters {
  Histogram latency;
  uint64_t ops = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t errors = 0;          // inside the window, and preload puts given up on
  uint64_t compare_failed = 0;  // txn compares that did not hold
  std::string first_error;
};

class UnaryLoad;

struct Client {
  UnaryLoad* load = nullptr;
  int id = 0;
  pb::KV::Stub* kv = nullptr;
  gpb::Groups::Stub* groups = nullptr;
  grpc::CompletionQueue* cq = nullptr;
  Counters* counters = nullptr;
  std::mt19937_64 rng;
  OpKind kind = OpKind::kPut;
  int64_t sent_ns = 0;
  int64_t txn_mod_revision = 0;
  std::unique_ptr<grpc::ClientContext> ctx;
  grpc::Status status;
  pb::PutRequest put_req;
  pb::PutResponse put_resp;
  pb::RangeRequest range_req;
  pb::RangeResponse range_resp;
  pb::TxnRequest txn_req;
  pb::TxnResponse txn_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::PutResponse>> put_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::RangeResponse>> range_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::TxnResponse>> txn_rpc;
  gpb::PutRequest group_put_req;
  gpb::PutResponse group_put_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<gpb::PutResponse>> group_put_rpc;
  grpc::Alarm retry;         // after a failed request, the next waits a little
  bool waiting = false;      // the completion due is the retry alarm's
  uint64_t preload_key = 0;  // the key being preloaded, and how often its put failed in a row
  int preload_failures = 0;
};

class UnaryLoad {
 public:
  explicit UnaryLoad(const Options& o) : o_(o), conns_(connect(o)) {
    value_.assign(static_cast<size_t>(o.value_size), 'v');
    cqs_.resize(static_cast<size_t>(o.threads));
    counters_.resize(static_cast<size_t>(o.threads));
    for (auto& cq : cqs_)
      cq = std::make_unique<grpc::CompletionQueue>();
    for (int i = 0; i < o.clients; ++i) {
      clients_.push_back(std::make_unique<Client>());
      Client& c = *clients_.back();
      c.load = this;
      c.id = i;
      c.kv = conns_[static_cast<size_t>(i % o.conns)].kv.get();
      c.groups = conns_[static_cast<size_t>(i % o.conns)].groups.get();
      c.cq = cqs_[static_cast<size_t>(i % o.threads)].get();
      c.counters = &counters_[static_cast<size_t>(i % o.threads)];
      c.rng.seed(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(i + 1));
    }
  }

  // Writes keys [0, n) once each with every client busy, outside any window.
  void preload(uint64_t n) {
    preload_next_ = 0;
    preload_end_ = n;
    preloading_ = true;
    run_phase([] {});
    preloading_ = false;
  }

  void run(Window* w, double warmup, double seconds, const std::vector<int>& pids,
           ProcSample* before, ProcSample* after) {
    window_ = w;
    run_phase([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
      *before = sample_procs(pids);
      w->begin_ns = now_ns();
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      w->end_ns = now_ns();
      *after = sample_procs(pids);
      w->stop = true;
    });
  }

  Counters merged() const {
    Counters total;
    for (const auto& c : counters_) {
      total.latency.merge(c.latency);
      total.ops += c.ops;
      total.reads += c.reads;
      total.writes += c.writes;
      total.errors += c.errors;
      total.compare_failed += c.compare_failed;
      if (total.first_error.empty()) total.first_error = c.first_error;
    }
    return total;
  }

 private:
  // Starts every client, runs `during` while they work (each stops on its own when the phase
  // has nothing left for it), waits for the last answers, and leaves fresh queues for the next
  // phase.
  template <typename During>
  void run_phase(During during) {
    for (auto& c : clients_)
      issue_next(c.get());
    std::vector<std::thread> threads;
    for (auto& cq : cqs_)
      threads.emplace_back([this, q = cq.get()] { poll(q); });
    during();
    wait_idle();
    for (auto& cq : cqs_)
      cq->Shutdown();
    for (auto& t : threads)
      t.join();
    for (auto& cq : cqs_)
      cq = std::make_unique<grpc::CompletionQueue>();
    for (size_t i = 0; i < clients_.size(); ++i)
      clients_[i]->cq = cqs_[i % cqs_.size()].get();
  }

  void wait_idle() {
    while (in_flight_.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  void poll(grpc::CompletionQueue* cq) {
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok))
      complete(static_cast<Client*>(tag));
  }

  void issue_next(Client* c) {
    if (preloading_) {
      // A key whose put failed is put again (up to 50 times) before the client takes the next.
      uint64_t k = c->preload_failures > 0 ? c->preload_key : preload_next_.fetch_add(1);
      if (k >= preload_end_) return;
      c->preload_key = k;
      send_put(c, key_name("bench/", k));
      return;
    }
    if (window_->stop.load()) return;
    const std::string& s = o_.scenario;
    uint64_t key = c->rng() % static_cast<uint64_t>(o_.keys);
    if (s == "put") {
      send_put(c, key_name("bench/", key));
    } else if (s == "group-put") {
      send_group_put(c, 2 + c->rng() % static_cast<uint64_t>(o_.groups), key_name("bench/", key));
    } else if (s == "get" || s == "get-serial") {
      send_get(c, key_name("bench/", key), s == "get-serial");
    } else if (s == "mix") {
      if (c->rng() % 10 == 0) {
        send_put(c, key_name("bench/", key));
      } else {
        send_get(c, key_name("bench/", key), false);
      }
    } else {
      send_txn(c);
    }
  }

  void start(Client* c, OpKind kind) {
    c->kind = kind;
    c->ctx = std::make_unique<grpc::ClientContext>();
    c->ctx->set_deadline(after_ms(o_.timeout_ms));
    c->sent_ns = now_ns();
    in_flight_.fetch_add(1);
  }

  void send_put(Client* c, std::string key) {
    start(c, OpKind::kPut);
    c->put_req.set_key(std::move(key));
    c->put_req.set_value(value_);
    c->put_rpc = c->kv->AsyncPut(c->ctx.get(), c->put_req, c->cq);
    c->put_rpc->Finish(&c->put_resp, &c->status, c);
  }

  void send_group_put(Client* c, uint64_t group, std::string key) {
    start(c, OpKind::kPut);
    c->group_put_req.set_group(group);
    c->group_put_req.set_key(std::move(key));
    c->group_put_req.set_value(value_);
    c->group_put_rpc = c->groups->AsyncPut(c->ctx.get(), c->group_put_req, c->cq);
    c->group_put_rpc->Finish(&c->group_put_resp, &c->status, c);
  }

  void send_get(Client* c, std::string key, bool serializable) {
    start(c, OpKind::kGet);
    c->range_req.set_key(std::move(key));
    c->range_req.set_serializable(serializable);
    c->range_rpc = c->kv->AsyncRange(c->ctx.get(), c->range_req, c->cq);
    c->range_rpc->Finish(&c->range_resp, &c->status, c);
  }

  // If the client's own key still has the mod_revision its last write gave it, put it again;
  // otherwise read it back (to learn the revision).
  void send_txn(Client* c) {
    start(c, OpKind::kTxn);
    std::string key = key_name("bench/txn/", static_cast<uint64_t>(c->id));
    c->txn_req.Clear();
    auto* cmp = c->txn_req.add_compare();
    cmp->set_result(pb::Compare::EQUAL);
    cmp->set_target(pb::Compare::MOD);
    cmp->set_key(key);
    cmp->set_mod_revision(c->txn_mod_revision);
    auto* put = c->txn_req.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value_);
    c->txn_req.add_failure()->mutable_request_range()->set_key(key);
    c->txn_rpc = c->kv->AsyncTxn(c->ctx.get(), c->txn_req, c->cq);
    c->txn_rpc->Finish(&c->txn_resp, &c->status, c);
  }

  void complete(Client* c) {
    if (c->waiting) {
      c->waiting = false;
      finish(c);
      return;
    }
    int64_t done = now_ns();
    Counters& k = *c->counters;
    bool counted = window_ != nullptr && window_->contains(c->sent_ns, done);
    if (!c->status.ok()) {
      bool give_up = preloading_ && ++c->preload_failures > 50;
      if (counted || give_up) {
        ++k.errors;
        if (k.first_error.empty()) k.first_error = c->status.error_message();
      }
      if (give_up) c->preload_failures = 0;
      // A refused request is followed by the next only after a pause: a member that refuses
      // everything is not hammered.
      c->waiting = true;
      c->retry.Set(c->cq, after_ms(10), c);
      return;
    }
    c->preload_failures = 0;
    if (c->kind == OpKind::kTxn) {
      if (c->txn_resp.succeeded()) {
        c->txn_mod_revision = c->txn_resp.header().revision();
      } else {
        if (counted) ++k.compare_failed;
        const auto& r = c->txn_resp.responses(0).response_range();
        c->txn_mod_revision = r.kvs_size() > 0 ? r.kvs(0).mod_revision() : 0;
      }
    }
    if (counted) {
      k.latency.record(static_cast<uint64_t>(done - c->sent_ns));
      ++k.ops;
      if (c->kind == OpKind::kGet) {
        ++k.reads;
      } else {
        ++k.writes;
      }
    }
    finish(c);
  }

  // The next request is started before this one stops counting as in flight, so that
  // wait_idle() never sees zero while a completion is about to start another.
  void finish(Client* c) {
    issue_next(c);
    in_flight_.fetch_sub(1);
  }

  const Options& o_;
  std::vector<Conn> conns_;
  std::string value_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs_;
  std::vector<Counters> counters_;
  std::vector<std::unique_ptr<Client>> clients_;
  Window* window_ = nullptr;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> preloading_{false};
  std::atomic<uint64_t> preload_next_{0};
  uint64_t preload_end_ = 0;
};

// ----- Watch fan-out --------------------------------------------------------------------------

struct Watcher;

struct WatchTag {
  enum What { kStart, kWrite, kRead, kFinish } what;
  Watcher* w;
};

struct Watcher {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream;
  pb::WatchResponse resp;
  grpc::Status status;
  WatchTag start{WatchTag::kStart, this};
  WatchTag write{WatchTag::kWrite, this};
  WatchTag read{WatchTag::kRead, this};
  WatchTag finish{WatchTag::kFinish, this};
  uint64_t events = 0;  // every event seen, in the window or not
};

class WatchLoad {
 public:
  explicit WatchLoad(const Options& o) : o_(o), conns_(connect(o)) {
    watchers_.resize(static_cast<size_t>(o.watchers));
    for (auto& w : watchers_)
      w = std::make_unique<Watcher>();
  }

  void run(Window* w, const std::vector<int>& pids, ProcSample* before, ProcSample* after,
           Counters* put_counters) {
    window_ = w;
    std::thread poller([this] { poll(); });
    for (size_t i = 0; i < watchers_.size(); ++i) {
      Watcher* wt = watchers_[i].get();
      wt->ctx = std::make_unique<grpc::ClientContext>();
      wt->stream = conns_[i % conns_.size()].watch->PrepareAsyncWatch(wt->ctx.get(), &cq_);
      wt->stream->StartCall(&wt->start);
    }
    auto ready_by = Clock::now() + std::chrono::seconds(30);
    while (created_.load() < watchers_.size() && Clock::now() < ready_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (created_.load() < watchers_.size()) {
      // Reported as broken streams (and their events as missed); the run goes on.
      std::fprintf(stderr, "chorus-etcd-load: only %zu of %zu watches were created\n",
                   created_.load(), watchers_.size());
      not_created_ = watchers_.size() - created_.load();
    }
    // The writer: puts at a fixed rate, each value its send time, warmup then the window.
    pb::KV::Stub* kv = conns_[0].kv.get();
    std::string value(static_cast<size_t>(o_.value_size), 'v');
    auto interval = std::chrono::duration<double>(1.0 / o_.rate);
    auto t0 = Clock::now();
    auto warm_end =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.warmup));
    auto end = warm_end + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(o_.seconds));
    bool in_window = false;
    uint64_t last_put = 0;
    for (uint64_t i = 0;; ++i) {
      auto due = t0 + std::chrono::duration_cast<Clock::duration>(interval * i);
      if (due >= end) break;
      std::this_thread::sleep_until(due);
      if (!in_window && Clock::now() >= warm_end) {
        in_window = true;
        *before = sample_procs(pids);
        w->begin_ns = now_ns();
      }
      int64_t sent = now_ns();
      std::snprintf(value.data(), value.size(), "%020lld", static_cast<long long>(sent));
      value[20] = ' ';
      pb::PutRequest req;
      req.set_key(key_name("bench/watch/", i % 16));
      req.set_value(value);
      pb::PutResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(after_ms(o_.timeout_ms));
      grpc::Status st = kv->Put(&ctx, req, &resp);
      int64_t done = now_ns();
      if (!st.ok()) {
        if (in_window) {
          ++put_counters->errors;
          if (put_counters->first_error.empty()) put_counters->first_error = st.error_message();
        }
        continue;
      }
      ++total_puts_;
      last_put = resp.header().revision();
      if (in_window) {
        ++window_puts_;
        put_counters->latency.record(static_cast<uint64_t>(done - sent));
        ++put_counters->ops;
        ++put_counters->writes;
      }
    }
    w->end_ns = now_ns();
    *after = sample_procs(pids);
    // Every watcher should now see every put; give deliveries a few seconds to finish.
    auto drain_by = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < drain_by && !all_seen()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    (void)last_put;
    stopping_ = true;
    for (auto& wt : watchers_)
      wt->ctx->TryCancel();
    auto finish_by = Clock::now() + std::chrono::seconds(10);
    while (finished_.load() < watchers_.size() && Clock::now() < finish_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    cq_.Shutdown();
    poller.join();
  }

  uint64_t window_puts() const { return window_puts_; }
  uint64_t total_puts() const { return total_puts_; }
  uint64_t window_events() const { return window_events_; }
  uint64_t watchers_broken() const { return broken_.load() + not_created_; }
  const Histogram& latency() const { return latency_; }
  // Events of any put a watcher never saw (only acknowledged puts are expected).
  uint64_t missed() const {
    uint64_t missed = 0;
    for (const auto& w : watchers_)
      missed += w->events < total_puts_ ? total_puts_ - w->events : 0;
    return missed;
  }

 private:
  bool all_seen() {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& w : watchers_) {
      if (w->events < total_puts_) return false;
    }
    return true;
  }

  void poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
      auto* t = static_cast<WatchTag*>(tag);
      Watcher* w = t->w;
      switch (t->what) {
        case WatchTag::kStart:
          if (!ok) {
            fail(w);
            break;
          }
          {
            pb::WatchRequest req;
            auto* c = req.mutable_create_request();
            c->set_key("bench/watch/");
            c->set_range_end("bench/watch0");  // the prefix's end: '/' + 1
            w->stream->Write(req, &w->write);
          }
          break;
        case WatchTag::kWrite:
          if (!ok) {
            fail(w);
            break;
          }
          w->stream->Read(&w->resp, &w->read);
          break;
        case WatchTag::kRead:
          if (!ok) {
            fail(w);
            break;
          }
          on_response(w);
          w->stream->Read(&w->resp, &w->read);
          break;
        case WatchTag::kFinish:
          finished_.fetch_add(1);
          break;
      }
    }
  }

  void fail(Watcher* w) {
    if (!stopping_) broken_.fetch_add(1);
    w->stream->Finish(&w->status, &w->finish);
  }

  void on_response(Watcher* w) {
    int64_t now = now_ns();
    if (w->resp.created()) created_.fetch_add(1);
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& ev : w->resp.events()) {
      ++w->events;
      int64_t sent = std::atoll(ev.kv().value().substr(0, 20).c_str());
      if (sent >= window_->begin_ns.load() && sent <= window_->end_ns.load()) {
        latency_.record(static_cast<uint64_t>(now - sent));
        ++window_events_;
      }
    }
  }

  const Options& o_;
  std::vector<Conn> conns_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
  Window* window_ = nullptr;
  std::atomic<size_t> created_{0};
  std::atomic<size_t> finished_{0};
  std::atomic<uint64_t> broken_{0};
  uint64_t not_created_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  Histogram latency_;
  uint64_t window_events_ = 0;
  uint64_t window_puts_ = 0;
  std::atomic<uint64_t> total_puts_{0};
};

void print_latency(const char* prefix, const Histogram& h) {
  std::printf("\"%sp50_us\": %.1f, \"%sp99_us\": %.1f, \"%sp999_us\": %.1f, \"%smax_us\": %.1f",
              prefix, static_cast<double>(h.quantile(0.50)) / 1e3, prefix,
              static_cast<double>(h.quantile(0.99)) / 1e3, prefix,
              static_cast<double>(h.quantile(0.999)) / 1e3, prefix,
              static_cast<double>(h.max()) / 1e3);
}

void print_procs(const Options& o, const ProcSample& before, const ProcSample& after,
                 uint64_t ops) {
  if (o.server_pids.empty()) return;
  double cpu = after.cpu_seconds - before.cpu_seconds;
  std::printf(
      ", \"server_cpu_s\": %.3f, \"server_cpu_us_per_op\": %.1f, \"server_peak_rss_mib\": %.1f",
      cpu, ops > 0 ? cpu * 1e6 / static_cast<double>(ops) : 0.0,
      static_cast<double>(after.peak_rss_bytes) / (1 << 20));
}

void print_error(const std::string& e) {
  std::string clean;
  for (char ch : e)
    clean += (ch == '"' || ch == '\\' || ch < 0x20) ? ' ' : ch;
  std::printf(", \"first_error\": \"%s\"", clean.c_str());
}

int run(const Options& o) {
  Window w;
  ProcSample before;
  ProcSample after;
  if (o.scenario == "watch") {
    WatchLoad load(o);
    Counters puts;
    load.run(&w, o.server_pids, &before, &after, &puts);
    double secs = static_cast<double>(w.end_ns - w.begin_ns) / 1e9;
    std::printf(
        "{\"scenario\": \"watch\", \"watchers\": %d, \"rate\": %.1f, \"seconds\": %.3f, "
        "\"puts\": %llu, \"events\": %llu, \"events_per_s\": %.1f, \"missed\": %llu, "
        "\"broken_streams\": %llu, \"errors\": %llu, ",
        o.watchers, o.rate, secs, static_cast<unsigned long long>(load.window_puts()),
        static_cast<unsigned long long>(load.window_events()),
        static_cast<double>(load.window_events()) / secs,
        static_cast<unsigned long long>(load.missed()),
        static_cast<unsigned long long>(load.watchers_broken()),
        static_cast<unsigned long long>(puts.errors));
    print_latency("", load.latency());
    std::printf(", ");
    print_latency("put_", puts.latency);
    print_procs(o, before, after, load.window_events());
    if (!puts.first_error.empty()) print_error(puts.first_error);
    std::printf("}\n");
    return puts.errors == 0 && load.missed() == 0 && load.watchers_broken() == 0 ? 0 : 1;
  }
  UnaryLoad load(o);
  if (o.scenario == "get" || o.scenario == "get-serial" || o.scenario == "mix") {
    load.preload(static_cast<uint64_t>(o.keys));
  }
  load.run(&w, o.warmup, o.seconds, o.server_pids, &before, &after);
  Counters c = load.merged();
  double secs = static_cast<double>(w.end_ns - w.begin_ns) / 1e9;
  std::printf(
      "{\"scenario\": \"%s\", \"clients\": %d, \"conns\": %d, \"value_size\": %d, "
      "\"seconds\": %.3f, \"ops\": %llu, \"reads\": %llu, \"writes\": %llu, "
      "\"ops_per_s\": %.1f, \"errors\": %llu, \"compare_failed\": %llu, ",
      o.scenario.c_str(), o.clients, o.conns, o.value_size, secs,
      static_cast<unsigned long long>(c.ops), static_cast<unsigned long long>(c.reads),
      static_cast<unsigned long long>(c.writes), static_cast<double>(c.ops) / secs,
      static_cast<unsigned long long>(c.errors), static_cast<unsigned long long>(c.compare_failed));
  print_latency("", c.latency);
  print_procs(o, before, after, c.ops);
  if (!c.first_error.empty()) print_error(c.first_error);
  std::printf("}\n");
  return c.errors == 0 && c.ops > 0 ? 0 : 1;
}

}  // namespace
}  // namespace chorus::bench

int main(int argc, char** argv) {
  chorus::bench::Options o = chorus::bench::parse(argc, argv);
  return chorus::bench::run(o);
}
