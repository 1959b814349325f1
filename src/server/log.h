// Structured logs: one JSON object per line on stderr, with a time, a level and a message,
// filtered by --log-level. The level is process-wide, as a process has one stderr.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chorus::server {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kFatal = 4 };

// "debug", "info", "warn" or "error"; "panic" and "fatal" (etcd's) keep only the messages of a
// member stopping on an error. False for anything else.
bool parse_log_level(std::string_view text, LogLevel* out);

// etcd's --log-outputs: where every line goes, each of "stderr", "stdout", "systemd/journal"
// (the journal's native socket) or a file path (appended to). Set once at start, before other
// threads log; an error names the output that cannot be opened. Lines go to stderr until then.
std::string set_log_outputs(const std::vector<std::string>& outputs);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

using LogFields = std::vector<std::pair<std::string, std::string>>;
// {"ts":"2026-11-30T05:00:00.123Z","level":"info","msg":"...","key":"value",...}
void log(LogLevel level, std::string_view msg, const LogFields& fields = {});
// The line log() writes, without the time (for tests).
std::string format_log_line(LogLevel level, std::string_view msg, const LogFields& fields);

}  // namespace chorus::server
