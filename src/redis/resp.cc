#include "redis/resp.h"

#include <charconv>

namespace chorus::redis {

namespace {

// A length line's number as Redis reads it (string2ll): optional '-', digits, nothing else.
bool parse_length(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (*first == '+') return false;
  auto [p, ec] = std::from_chars(first, last, *out);
  return ec == std::errc() && p == last;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

}  // namespace

bool split_inline(std::string_view line, std::vector<std::string>* argv) {
  argv->clear();
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && is_space(line[i]))
      ++i;
    if (i == n) return true;
    std::string arg;
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    while (!done) {
      if (in_double) {
        if (i == n) return false;  // unterminated quotes
        char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 &&
            hex_digit(line[i + 3]) >= 0) {
          arg.push_back(static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < n) {
          // \n \r \t \b \a, and any other escaped character as itself.
          static constexpr std::string_view kFrom = "nrtba", kTo = "\n\r\t\b\a";
          char e = line[i + 1];
          size_t at = kFrom.find(e);
          arg.push_back(at == std::string_view::npos ? e : kTo[at]);
          i += 2;
        } else if (c == '"') {
          // The closing quote must be followed by a space or the end.
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          done = true;
          ++i;
        } else {
          arg.push_back(c);
          ++i;
        }
      } else if (in_single) {
        if (i == n) return false;
        char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          arg.push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          done = true;
          ++i;
        } else {
          arg.push_back(c);
          ++i;
        }
      } else {
        if (i == n) {
          done = true;
          break;
        }
        char c = line[i];
        if (is_space(c)) {
          done = true;
        } else if (c == '"') {
          in_double = true;
          ++i;
        } else if (c == '\'') {
          in_single = true;
          ++i;
        } else {
          arg.push_back(c);
          ++i;
        }
      }
    }
    argv->push_back(std::move(arg));
  }
}

RequestParser::Result RequestParser::inline_command(std::string_view buf, size_t* pos,
                                                    std::vector<std::string>* argv,
                                                    std::string* error) {
  std::string_view rest = buf.substr(*pos);
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) {
    if (rest.size() > kMaxInlineBytes) {
      *error = "Protocol error: too big inline request";
      return Result::kError;
    }
    return Result::kNeedMore;
  }
  std::string_view line = rest.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!split_inline(line, argv)) {
    *error = "Protocol error: unbalanced quotes in request";
    return Result::kError;
  }
  *pos += nl + 1;
  return Result::kCommand;
}

RequestParser::Result RequestParser::next(std::string_view buf, size_t* pos,
                                          std::vector<std::string>* argv, std::string* error) {
  argv->clear();
  if (*pos >= buf.size()) return Result::kNeedMore;
  if (buf[*pos] != '*') return inline_command(buf, pos, argv, error);
  size_t p = *pos;
  // The line of a count (*n) or a length ($n), at p; npos: not whole yet.
  auto line_at = [&](size_t at, const char* too_big, std::string_view* line) -> int {
    size_t cr = buf.find("\r\n", at);
    if (cr == std::string_view::npos) {
      if (buf.size() - at > kMaxInlineBytes) {
        *error = too_big;
        return -1;
      }
      return 0;
    }
    *line = buf.substr(at, cr - at);
    return 1;
  };
  std::string_view line;
  int got = line_at(p, "Protocol error: too big mbulk count string", &line);
  if (got <= 0) return got < 0 ? Result::kError : Result::kNeedMore;
  int64_t count = 0;
  if (!parse_length(line.substr(1), &count) || count > kMaxMultibulkCount) {
    *error = "Protocol error: invalid multibulk length";
    return Result::kError;
  }
  p += line.size() + 2;
  if (count <= 0) {
    *pos = p;
    return Result::kCommand;  // an empty command, ignored
  }
  std::vector<std::string> args;
  args.reserve(static_cast<size_t>(std::min<int64_t>(count, 1024)));
  for (int64_t i = 0; i < count; ++i) {
    if (p >= buf.size()) return Result::kNeedMore;
    if (buf[p] != '$') {
      *error = std::string("Protocol error: expected '$', got '") + buf[p] + "'";
      return Result::kError;
    }
    got = line_at(p, "Protocol error: too big bulk count string", &line);
    if (got <= 0) return got < 0 ? Result::kError : Result::kNeedMore;
    int64_t len = 0;
    if (!parse_length(line.substr(1), &len) || len < 0 || static_cast<uint64_t>(len) > max_bulk_) {
      *error = "Protocol error: invalid bulk length";
      return Result::kError;
    }
    size_t start = p + line.size() + 2;
    if (buf.size() - start < static_cast<size_t>(len) + 2) return Result::kNeedMore;
    args.emplace_back(buf.substr(start, static_cast<size_t>(len)));
    p = start + static_cast<size_t>(len) + 2;  // the \r\n after the data, as Redis, unchecked
  }
  *argv = std::move(args);
  *pos = p;
  return Result::kCommand;
}

namespace {

void append_line(char type, std::string_view text, std::string* out) {
  out->push_back(type);
  for (char c : text)
    out->push_back(c == '\r' || c == '\n' ? ' ' : c);
  out->append("\r\n");
}

void append_count(char type, int64_t n, std::string* out) {
  out->push_back(type);
  out->append(std::to_string(n));
  out->append("\r\n");
}

void append_bulk(std::string_view s, std::string* out) {
  append_count('$', static_cast<int64_t>(s.size()), out);
  out->append(s);
  out->append("\r\n");
}

}  // namespace

void encode(const Reply& r, int protocol, std::string* out) {
  const bool resp3 = protocol >= 3;
  switch (r.kind) {
    case Reply::Kind::kStatus:
      append_line('+', r.str, out);
      break;
    case Reply::Kind::kError:
      append_line('-', r.str, out);
      break;
    case Reply::Kind::kInteger:
      append_count(':', r.integer, out);
      break;
    case Reply::Kind::kBulk:
      append_bulk(r.str, out);
      break;
    case Reply::Kind::kNull:
      out->append(resp3 ? "_\r\n" : "$-1\r\n");
      break;
    case Reply::Kind::kNullArray:
      out->append(resp3 ? "_\r\n" : "*-1\r\n");
      break;
    case Reply::Kind::kArray:
    case Reply::Kind::kSet:
    case Reply::Kind::kPush:
      append_count(!resp3                         ? '*'
                   : r.kind == Reply::Kind::kSet  ? '~'
                   : r.kind == Reply::Kind::kPush ? '>'
                                                  : '*',
                   static_cast<int64_t>(r.elements.size()), out);
      for (const Reply& e : r.elements)
        encode(e, protocol, out);
      break;
    case Reply::Kind::kPairs:
      if (!resp3) {
        append_count('*', static_cast<int64_t>(r.elements.size()), out);
        for (const Reply& e : r.elements)
          encode(e, protocol, out);
        break;
      }
      append_count('*', static_cast<int64_t>(r.elements.size() / 2), out);
      for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
        out->append("*2\r\n");
        encode(r.elements[i], protocol, out);
        encode(r.elements[i + 1], protocol, out);
      }
      break;
    case Reply::Kind::kDouble:
      if (resp3) {
        append_line(',', r.str, out);
      } else {
        append_bulk(r.str, out);
      }
      break;
    case Reply::Kind::kMap:
      if (resp3) {
        append_count('%', static_cast<int64_t>(r.elements.size() / 2), out);
      } else {
        append_count('*', static_cast<int64_t>(r.elements.size()), out);
      }
      for (const Reply& e : r.elements)
        encode(e, protocol, out);
      break;
  }
}

}  // namespace chorus::redis
