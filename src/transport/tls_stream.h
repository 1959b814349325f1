// A connection that may speak TLS: an Asio SSL stream over its TCP socket, with only the socket
// beneath used when it does not (a context that never handshakes sits idle). For the files
// that include Asio already: the peer transport and the client port.
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

#include "transport/tls_context.h"

namespace chorus::transport {

using Stream = asio::ssl::stream<asio::ip::tcp::socket>;

// Reads and writes on the TLS stream, or on the socket beneath it without TLS.
template <typename Buffers, typename Handler>
void read_some(Stream& s, bool tls, const Buffers& b, Handler h) {
  if (tls) {
    s.async_read_some(b, std::move(h));
  } else {
    s.next_layer().async_read_some(b, std::move(h));
  }
}

template <typename Buffers, typename Handler>
void write_all(Stream& s, bool tls, const Buffers& b, Handler h) {
  if (tls) {
    asio::async_write(s, b, std::move(h));
  } else {
    asio::async_write(s.next_layer(), b, std::move(h));
  }
}

// What a failed TLS handshake says, with OpenSSL's reason when there is one.
std::string tls_error(const std::error_code& ec);

}  // namespace chorus::transport
