// What the servers on Asio share (the metrics listeners, the Redis face): a listening socket,
// and one I/O thread started once and stopped once. Included by .cc files that include Asio
// themselves.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/thread_name.h"
#include "storage/status.h"

namespace chorus::server {

// One thread running an io_context. Declare it before anything holding sockets or timers of
// its io_context, so that it is destroyed after them.
class IoThread {
 public:
  enum class State { kIdle, kRunning, kStopped };

  IoThread() = default;
  ~IoThread() = default;
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  asio::io_context io;

  // Starts the thread, named `name`, which runs `first` and then every handler until stop();
  // false if it was started or stopped before.
  bool start(const char* name, std::function<void()> first) {
    {
      std::lock_guard lock(mu_);
      if (state_ != State::kIdle) return false;
      state_ = State::kRunning;
    }
    work_.emplace(asio::make_work_guard(io));
    asio::post(io, std::move(first));
    thread_ = std::thread([this, thread_name = std::string(name)] {
      base::set_thread_name(thread_name.c_str());
      io.run();
    });
    return true;
  }

  // Stops once. A running thread runs `shutdown` (which closes whatever would start more
  // handlers), lets the handlers still queued drain and is joined. Returns the state before.
  State stop(std::function<void()> shutdown) {
    State before;
    {
      std::lock_guard lock(mu_);
      before = state_;
      state_ = State::kStopped;
    }
    if (before != State::kRunning) return before;
    if (std::this_thread::get_id() == thread_.get_id()) std::abort();  // from its own handler
    asio::post(io, [this, shutdown = std::move(shutdown)] {
      shutdown();
      work_.reset();
    });
    thread_.join();
    return before;
  }

  bool idle() const {
    std::lock_guard lock(mu_);
    return state_ == State::kIdle;
  }

 private:
  mutable std::mutex mu_;
  State state_ = State::kIdle;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

// Opens, binds and listens: `host` is an IP address (IPv6 in brackets or not), empty for every
// IPv4 address, or a name whose first address is taken.
inline storage::Status bind_acceptor(asio::ip::tcp::acceptor& acceptor, const std::string& host,
                                     uint16_t port, uint16_t* bound_port) {
  using asio::ip::tcp;
  std::string name = host.empty() ? "0.0.0.0" : host;
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  asio::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(name, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(acceptor.get_executor());
    tcp::resolver::results_type results = resolver.resolve(name, std::to_string(port), ec);
    if (ec || results.empty())
      return storage::Status::invalid_argument("cannot resolve " + host + ": " + ec.message());
    endpoint = *results.begin();
  }
  std::string where = host + ":" + std::to_string(port);
  auto fail = [&](const char* step) {
    return storage::Status::io_error(std::string(step) + " " + where + ": " + ec.message());
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  // A restarted chorusd must bind its port again while connections of its previous life wait
  // out TIME_WAIT.
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("reuse");
  acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  tcp::endpoint local = acceptor.local_endpoint(ec);
  if (ec) return fail("local address of");
  if (bound_port != nullptr) *bound_port = local.port();
  return storage::Status::ok();
}

}  // namespace chorus::server
