#include "server/log.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace chorus::server {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

// One place lines go. Written with one write() per line, so lines from different threads do
// not interleave.
struct Output {
  int fd = -1;
  bool journal = false;
  bool owned = false;
};
std::vector<Output> g_outputs = {Output{STDERR_FILENO, false, false}};

// The journal's syslog priority for a level.
int priority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarn:
      return 4;
    case LogLevel::kError:
      return 3;
    case LogLevel::kFatal:
      return 2;
  }
  return 6;
}

const char* name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kFatal:
      return "fatal";
  }
  return "info";
}

void append_json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) {
  if (text == "panic" || text == "fatal") {
    *out = LogLevel::kFatal;
    return true;
  }
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void set_log_level(LogLevel level) {
  g_level = static_cast<int>(level);
}

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load();
}

std::string format_log_line(LogLevel level, std::string_view msg, const LogFields& fields) {
  std::string out = "\"level\":";
  append_json_string(&out, name(level));
  out += ",\"msg\":";
  append_json_string(&out, msg);
  for (const auto& [k, v] : fields) {
    out.push_back(',');
    append_json_string(&out, k);
    out.push_back(':');
    append_json_string(&out, v);
  }
  return out;
}

void log(LogLevel level, std::string_view msg, const LogFields& fields) {
  if (!log_enabled(level)) return;
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  std::string line = "{\"ts\":\"";
  line += ts;
  line += "\",";
  line += format_log_line(level, msg, fields);
  line += "}\n";
  for (const Output& o : g_outputs) {
    if (!o.journal) {
      ssize_t ignored = ::write(o.fd, line.data(), line.size());
      (void)ignored;
      continue;
    }
    // The journal's native protocol: one datagram of KEY=value lines (the line holds no
    // newline inside: JSON escapes them).
    std::string entry = "PRIORITY=" + std::to_string(priority(level)) +
                        "\nSYSLOG_IDENTIFIER=chorusd\nMESSAGE=" + line;
    (void)::send(o.fd, entry.data(), entry.size(), MSG_NOSIGNAL);
  }
}

std::string set_log_outputs(const std::vector<std::string>& outputs) {
  std::vector<Output> opened;
  auto close_all = [&] {
    for (const Output& o : opened)
      if (o.owned) ::close(o.fd);
  };
  for (const std::string& name : outputs) {
    if (name == "stderr") {
      opened.push_back(Output{STDERR_FILENO, false, false});
    } else if (name == "stdout") {
      opened.push_back(Output{STDOUT_FILENO, false, false});
    } else if (name == "systemd/journal") {
      int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", kJournalSocket);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        std::string why = std::strerror(errno);
        if (fd >= 0) ::close(fd);
        close_all();
        return "--log-outputs systemd/journal: cannot reach the journal at " +
               std::string(kJournalSocket) + ": " + why;
      }
      opened.push_back(Output{fd, true, true});
    } else {
      int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (fd < 0) {
        std::string why = std::strerror(errno);
        close_all();
        return "--log-outputs '" + name + "': cannot open: " + why;
      }
      opened.push_back(Output{fd, false, true});
    }
  }
  if (opened.empty()) opened.push_back(Output{STDERR_FILENO, false, false});
  g_outputs = std::move(opened);
  return {};
}

}  // namespace chorus::server
