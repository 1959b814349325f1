#include "server/config.h"
#include "server/config_settings.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

extern char** environ;

#ifndef CHORUS_VERSION_STRING
#define CHORUS_VERSION_STRING "unknown"
#endif

namespace chorus::server {
namespace {

using config_detail::find_setting;
using config_detail::help_text;
using config_detail::kDefaultInitialCluster;
using config_detail::kDefaultListenClientUrls;
using config_detail::kDefaultListenPeerUrls;
using config_detail::Setting;
using config_detail::settings;

constexpr std::string_view kEnvPrefix = "CHORUS_";
// A config file is a few dozen lines; anything this large is the wrong file.
constexpr size_t kMaxConfigFileBytes = size_t{1} << 20;
// etcd refuses longer election timeouts: a leader failure would go unnoticed for minutes.
constexpr uint64_t kMaxElectionTimeoutMs = 50'000;
// Requests travel in one gRPC message, whose size is a signed 32-bit int.
constexpr uint64_t kMaxRequestBytesLimit = uint64_t{1} << 30;
// Data group ids are 2..N+1; each member hosts a replica of most of them.
constexpr uint64_t kMaxInitialGroups = 1'000'000;
// Labelled series per data group stay few: a scrape of thousands of groups would be the cost.
constexpr uint64_t kMaxGroupMetrics = 1000;

std::string env_name(std::string_view flag) {
  std::string name(kEnvPrefix);
  for (char ch : flag) {
    name += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return name;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// "a, b" -> {"a", "b"}; "" -> {}. Empty items stay, so "a,,b" can be refused.
std::vector<std::string_view> split_list(std::string_view text) {
  std::vector<std::string_view> items;
  if (trim(text).empty()) return items;
  for (;;) {
    size_t comma = text.find(',');
    items.push_back(trim(text.substr(0, comma)));
    if (comma == std::string_view::npos) return items;
    text.remove_prefix(comma + 1);
  }
}

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// A setting's value and where it came from, for error messages: "flag --name", "environment
// variable CHORUS_NAME", "config file 'c.yaml', key 'name'".
struct RawValue {
  std::string text;
  std::string where;
};
using RawValues = std::map<std::string, RawValue, std::less<>>;

bool fail(std::string* error, const RawValue& value, std::string_view problem) {
  *error = value.where + ": " + std::string(problem);
  return false;
}

const RawValue* find(const RawValues& values, std::string_view flag) {
  auto it = values.find(flag);
  return it == values.end() ? nullptr : &it->second;
}

RawValue lookup(const RawValues& values, std::string_view flag, std::string_view default_text) {
  if (const RawValue* v = find(values, flag)) return *v;
  return RawValue{std::string(default_text), "default of --" + std::string(flag)};
}

// "--name (flag --name)", "--name (default)": a setting named inside another's error.
std::string mention(const RawValues& values, std::string_view flag) {
  const RawValue* v = find(values, flag);
  return "--" + std::string(flag) + " (" + (v == nullptr ? "default" : v->where) + ")";
}

// ---- the command line ----------------------------------------------------------------------

// Go's flag package, which etcd uses: -flag and --flag alike, a value as "--flag=v" or
// "--flag v", a boolean as "--flag" or "--flag=false"; the last of repeated flags wins.
ParseOutcome parse_args(int argc, const char* const* argv, RawValues* flags, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i] == nullptr ? "" : argv[i];
    if (arg == "--") {
      if (i + 1 < argc) {
        *error = "unexpected argument " + in_quotes(argv[i + 1]) + ": chorusd takes only flags";
        return ParseOutcome::kError;
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      *error = "unexpected argument " + in_quotes(arg) + ": chorusd takes only flags (see --help)";
      return ParseOutcome::kError;
    }
    std::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    size_t eq = body.find('=');
    std::string_view name = body.substr(0, eq);
    if (name == "h" || name == "help") return ParseOutcome::kHelp;
    if (name == "version") return ParseOutcome::kVersion;
    const Setting* s = find_setting(name);
    if (s == nullptr) {
      *error = "unknown flag " + in_quotes(arg) + " (see chorusd --help)";
      return ParseOutcome::kError;
    }
    std::string value;
    if (eq != std::string_view::npos) {
      value = body.substr(eq + 1);
    } else if (s->value.empty()) {
      value = "true";
    } else if (i + 1 < argc && argv[i + 1] != nullptr) {
      value = argv[++i];
    } else {
      *error = "flag --" + std::string(name) + " needs a value, as in --" + std::string(name) +
               " " + std::string(s->value);
      return ParseOutcome::kError;
    }
    (*flags)[std::string(name)] = RawValue{std::move(value), "flag --" + std::string(name)};
  }
  return ParseOutcome::kRun;
}

// ---- the environment -----------------------------------------------------------------------

bool read_env(const std::map<std::string, std::string>& env, RawValues* out, std::string* error) {
  for (const auto& [key, value] : env) {
    if (!key.starts_with(kEnvPrefix)) continue;
    const Setting* setting = nullptr;
    for (const Setting& s : settings()) {
      if (env_name(s.flag) == key) setting = &s;
    }
    if (setting == nullptr) {
      // A misspelt variable would otherwise be ignored silently, and the member would start
      // with a setting its operator believes changed.
      *error = "environment variable " + key +
               " is not a chorusd setting (each is CHORUS_ and a flag name in upper case with "
               "underscores, as CHORUS_DATA_DIR for --data-dir; see chorusd --help)";
      return false;
    }
    if (value.empty()) continue;  // as etcd: an empty variable is an unset one
    (*out)[std::string(setting->flag)] = RawValue{value, "environment variable " + key};
  }
  return true;
}

// ---- the config file -----------------------------------------------------------------------

bool read_file(const RawValue& path, std::string* text, std::string* error) {
  const std::string what = "config file " + in_quotes(path.text) + " (from " + path.where + ")";
  std::error_code ec;
  if (std::filesystem::is_directory(path.text, ec)) {
    *error = what + ": is a directory";
    return false;
  }
  std::ifstream in(path.text, std::ios::binary);
  if (!in) {
    *error = what + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::array<char, 4096> buffer;
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
    text->append(buffer.data(), static_cast<size_t>(in.gcount()));
    if (text->size() > kMaxConfigFileBytes) {
      *error = what + ": larger than " + std::to_string(kMaxConfigFileBytes) + " bytes";
      return false;
    }
  }
  if (in.bad()) {
    *error = what + ": cannot read: " + std::strerror(errno);
    return false;
  }
  return true;
}

bool read_config_file(const RawValue& path, RawValues* out, std::string* error) {
  std::string text;
  if (!read_file(path, &text, error)) return false;
  const std::string file = "config file " + in_quotes(path.text);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    *error = file + ": not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) +
             ", column " + std::to_string(e.mark.column + 1) + ")";
    return false;
  }
  if (root.IsNull()) return true;
  if (!root.IsMap()) {
    *error = file + ": must map flag names to values, as in 'name: infra1'";
    return false;
  }
  std::set<std::string> seen;
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) {
      *error = file + ": every key must be a flag name, as in 'name: infra1'";
      return false;
    }
    const std::string key = entry.first.Scalar();
    const RawValue at{"", file + ", key " + in_quotes(key)};
    if (key == "config-file") return fail(error, at, "a config file cannot name another");
    const Setting* s = find_setting(key);
    if (s == nullptr) {
      *error = file + ": unknown key " + in_quotes(key);
      std::string dashed = key;
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      if (find_setting(dashed) != nullptr) *error += " (did you mean " + in_quotes(dashed) + "?)";
      *error += "; keys are chorusd's flag names, see chorusd --help";
      return false;
    }
    if (!seen.insert(key).second) return fail(error, at, "set twice");
    const YAML::Node& node = entry.second;
    std::string value;
    if (node.IsScalar()) {
      value = node.Scalar();
    } else if (node.IsSequence()) {
      if (!s->list) return fail(error, at, "takes one value, not a list");
      bool first = true;
      for (const YAML::Node& item : node) {
        if (!item.IsScalar()) return fail(error, at, "every list item must be a plain value");
        if (!first) value += ',';
        value += item.Scalar();
        first = false;
      }
    } else if (node.IsMap()) {
      return fail(error, at,
                  s->list ? "takes a string or a list, not a map" : "takes one value, not a map");
    }  // else null: an empty value
    (*out)[key] = RawValue{std::move(value), at.where};
  }
  return true;
}

// ---- values --------------------------------------------------------------------------------

bool parse_text(const RawValue& v, std::string* out, std::string* error) {
  if (v.text.empty()) return fail(error, v, "must not be empty");
  *out = v.text;
  return true;
}

bool parse_number(const RawValue& v, uint64_t min, uint64_t max, uint64_t* out,
                  std::string* error) {
  const std::string range =
      max == std::numeric_limits<uint64_t>::max()
          ? "want a whole number of at least " + std::to_string(min)
          : "want a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  std::string_view t = v.text;
  if (t.size() > 1 && t[0] == '-' && all_digits(t.substr(1))) {
    return fail(error, v, in_quotes(t) + " is negative; " + range);
  }
  if (!all_digits(t)) return fail(error, v, in_quotes(t) + " is not a whole number; " + range);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (ec != std::errc() || end != t.data() + t.size() || n < min || n > max) {
    return fail(error, v, in_quotes(t) + " is out of range; " + range);
  }
  *out = n;
  return true;
}

template <typename T>
bool parse_setting(const RawValues& values, std::string_view flag, T default_value, uint64_t min,
                   uint64_t max, T* out, std::string* error) {
  uint64_t n = 0;
  if (!parse_number(lookup(values, flag, std::to_string(default_value)), min, max, &n, error)) {
    return false;
  }
  *out = static_cast<T>(n);
  return true;
}

bool parse_bool(const RawValue& v, bool* out, std::string* error) {
  const std::string t = lower(v.text);
  if (t == "true" || t == "t" || t == "1" || t == "yes" || t == "on") {
    *out = true;
  } else if (t == "false" || t == "f" || t == "0" || t == "no" || t == "off") {
    *out = false;
  } else {
    return fail(error, v, in_quotes(v.text) + " is not a boolean; want true or false");
  }
  return true;
}

bool parse_choice(const RawValue& v, std::initializer_list<std::string_view> choices,
                  std::string* out, std::string* error) {
  std::string list;
  for (std::string_view c : choices) {
    if (v.text == c) {
      *out = v.text;
      return true;
    }
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  return fail(error, v, in_quotes(v.text) + " is not one of: " + list);
}

bool is_ip(const std::string& host, int family) {
  std::array<unsigned char, 16> addr{};
  return inet_pton(family, host.c_str(), addr.data()) == 1;
}

bool is_unspecified(const std::string& host) {
  std::array<unsigned char, 16> addr{};
  if (inet_pton(AF_INET, host.c_str(), addr.data()) != 1 &&
      inet_pton(AF_INET6, host.c_str(), addr.data()) != 1) {
    return false;
  }
  return std::all_of(addr.begin(), addr.end(), [](unsigned char b) { return b == 0; });
}

enum class UrlUse { kListen, kAdvertise };

bool check_url_use(const Url& u, UrlUse use, std::string* why) {
  if (use == UrlUse::kListen) {
    if (u.host != "localhost" && !is_ip(u.host, AF_INET) && !is_ip(u.host, AF_INET6)) {
      *why = in_quotes(u.to_string()) + " must name an IP address or localhost to listen on";
      return false;
    }
    return true;
  }
  if (u.port == 0) {
    *why = in_quotes(u.to_string()) + " has port 0, which others cannot connect to";
    return false;
  }
  if (is_unspecified(u.host)) {
    *why = in_quotes(u.to_string()) +
           " cannot be announced: it means every local address; name one others can reach";
    return false;
  }
  return true;
}

// redis://host:port URLs (the Redis face); TLS (rediss://) is not served yet.
bool parse_redis_urls(const RawValue& v, std::vector<Url>* out, std::string* error) {
  out->clear();
  for (std::string_view item : split_list(v.text)) {
    if (item.empty()) return fail(error, v, "has an empty entry in " + in_quotes(v.text));
    size_t sep = item.find("://");
    std::string scheme = sep == std::string_view::npos ? "" : lower(item.substr(0, sep));
    if (scheme == "rediss") {
      return fail(error, v,
                  in_quotes(item) + " asks for TLS, which the Redis face does not serve yet");
    }
    if (scheme != "redis") {
      return fail(error, v,
                  in_quotes(item) + " is not a redis:// URL, as in redis://127.0.0.1:6379");
    }
    Url u;
    std::string why;
    std::string as_http = "http" + std::string(item.substr(sep));
    if (!parse_url(as_http, &u, &why) || !check_url_use(u, UrlUse::kListen, &why)) {
      return fail(error, v, why.empty() ? in_quotes(item) + " is not a valid URL" : why);
    }
    u.scheme = "redis";
    if (std::find(out->begin(), out->end(), u) != out->end()) {
      return fail(error, v, "lists " + in_quotes(item) + " twice");
    }
    out->push_back(std::move(u));
  }
  return true;
}

// `no_https`: why this list may not hold https URLs, or null if it may.
bool parse_url_list(const RawValue& v, UrlUse use, bool may_be_empty, const char* no_https,
                    std::vector<Url>* out, std::string* error) {
  out->clear();
  std::vector<std::string_view> items = split_list(v.text);
  if (items.empty() && !may_be_empty) {
    return fail(error, v, "must list at least one URL, as in http://10.0.0.1:2379");
  }
  for (std::string_view item : items) {
    if (item.empty()) return fail(error, v, "has an empty entry in " + in_quotes(v.text));
    Url u;
    std::string why;
    if (!parse_url(item, &u, &why) || !check_url_use(u, use, &why)) return fail(error, v, why);
    if (no_https != nullptr && u.scheme == "https") {
      return fail(error, v, in_quotes(u.to_string()) + " is https, but " + no_https);
    }
    if (std::find(out->begin(), out->end(), u) != out->end()) {
      return fail(error, v, "lists " + in_quotes(u.to_string()) + " twice");
    }
    out->push_back(std::move(u));
  }
  return true;
}

bool parse_cluster(const RawValue& v, std::vector<Member>* out, std::string* error) {
  out->clear();
  std::vector<std::string_view> items = split_list(v.text);
  if (items.empty()) {
    return fail(error, v, "must list at least one member, as in infra1=http://10.0.0.1:2380");
  }
  for (std::string_view item : items) {
    if (item.empty()) return fail(error, v, "has an empty entry in " + in_quotes(v.text));
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return fail(error, v, "entry " + in_quotes(item) + " is not name=url");
    }
    std::string name(trim(item.substr(0, eq)));
    if (name.empty()) return fail(error, v, "entry " + in_quotes(item) + " has no name");
    Url u;
    std::string why;
    if (!parse_peer_url(trim(item.substr(eq + 1)), &u, &why) ||
        !check_url_use(u, UrlUse::kAdvertise, &why)) {
      return fail(error, v, "member " + in_quotes(name) + ": " + why);
    }
    for (const Member& m : *out) {
      if (std::find(m.peer_urls.begin(), m.peer_urls.end(), u) == m.peer_urls.end()) continue;
      return fail(error, v,
                  m.name == name
                      ? "lists " + in_quotes(u.to_string()) + " twice for member " + in_quotes(name)
                      : "gives " + in_quotes(u.to_string()) + " to both " + in_quotes(m.name) +
                            " and " + in_quotes(name));
    }
    auto member =
        std::find_if(out->begin(), out->end(), [&](const Member& m) { return m.name == name; });
    if (member == out->end()) member = out->insert(out->end(), Member{name, {}, 0});
    member->peer_urls.push_back(std::move(u));
  }
  return true;
}

std::vector<std::string> sorted_strings(const std::vector<Url>& urls) {
  std::vector<std::string> out;
  for (const Url& u : urls)
    out.push_back(u.to_string());
  std::sort(out.begin(), out.end());
  return out;
}

// Ids, the local member, and that the member announces the URLs the others expect of it: a
// mismatch would give this member a different id from the one the others compute for it.
bool check_cluster(const RawValues& values, ServerConfig* c, std::string* error) {
  const RawValue cluster = lookup(values, "initial-cluster", kDefaultInitialCluster);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < c->initial_cluster.size(); ++i) {
    Member& m = c->initial_cluster[i];
    m.id = compute_member_id(m.peer_urls, c->initial_cluster_token);
    for (size_t j = 0; j < i; ++j) {
      if (c->initial_cluster[j].id != m.id) continue;
      return fail(error, cluster,
                  "members " + in_quotes(c->initial_cluster[j].name) + " and " + in_quotes(m.name) +
                      " hash to the same id; change a URL or --initial-cluster-token");
    }
    ids.push_back(m.id);
  }
  c->cluster_id = compute_cluster_id(ids, c->initial_cluster_token);
  // A new cluster's first log entries describe its initial data groups: members started with
  // different counts would write different entries at the same index, so they form different
  // clusters (the handshake refuses a peer of another cluster id).
  if (c->initial_groups > 0) {
    c->cluster_id = compute_cluster_id({c->cluster_id, static_cast<uint64_t>(c->initial_groups)},
                                       c->initial_cluster_token + "/initial-groups");
  }

  auto self = std::find_if(c->initial_cluster.begin(), c->initial_cluster.end(),
                           [&](const Member& m) { return m.name == c->name; });
  if (self == c->initial_cluster.end()) {
    std::string problem = "does not list this member's name " + in_quotes(c->name) + ", from " +
                          mention(values, "name");
    if (find(values, "initial-cluster") == nullptr) problem += "; forgot to set --initial-cluster?";
    return fail(error, cluster, problem);
  }
  c->member_id = self->id;

  if (sorted_strings(self->peer_urls) != sorted_strings(c->initial_advertise_peer_urls)) {
    RawValue advertised = lookup(values, "initial-advertise-peer-urls", "");
    if (find(values, "initial-advertise-peer-urls") == nullptr) {
      advertised.where = "--initial-advertise-peer-urls (unset, so the --listen-peer-urls from " +
                         lookup(values, "listen-peer-urls", "").where + ")";
    }
    return fail(error, advertised,
                join_urls(c->initial_advertise_peer_urls) + " must equal the URLs " +
                    mention(values, "initial-cluster") + " lists for " + in_quotes(c->name) + ": " +
                    join_urls(self->peer_urls));
  }
  return true;
}

// The client TLS settings hang together: https client URLs need a certificate and its key,
// client certificate checks need the CA that signs them.
bool check_tls(const RawValues& values, ServerConfig* c, std::string* error) {
  c->cert_file = lookup(values, "cert-file", "").text;
  c->key_file = lookup(values, "key-file", "").text;
  c->trusted_ca_file = lookup(values, "trusted-ca-file", "").text;
  if (!parse_bool(lookup(values, "client-cert-auth", "false"), &c->client_cert_auth, error) ||
      !parse_bool(lookup(values, "auto-tls", "false"), &c->auto_tls, error)) {
    return false;
  }
  if (c->cert_file.empty() != c->key_file.empty()) {
    const char* set = c->cert_file.empty() ? "key-file" : "cert-file";
    const char* unset = c->cert_file.empty() ? "--cert-file" : "--key-file";
    return fail(error, lookup(values, set, ""), std::string("needs ") + unset + " too");
  }
  if (has_https(c->listen_client_urls) && c->cert_file.empty() && !c->auto_tls) {
    return fail(error, lookup(values, "listen-client-urls", kDefaultListenClientUrls),
                "lists an https URL: set --cert-file and --key-file (or --auto-tls)");
  }
  if (c->client_cert_auth && c->trusted_ca_file.empty()) {
    return fail(error, lookup(values, "client-cert-auth", ""),
                "needs --trusted-ca-file, the CA that client certificates must be signed by");
  }
  if (c->auto_tls && c->client_cert_auth) {
    return fail(error, lookup(values, "auto-tls", ""),
                "cannot go with --client-cert-auth: a self-signed certificate proves nothing "
                "to a CA");
  }
  if (c->client_cert_auth && !has_https(c->listen_client_urls)) {
    return fail(error, lookup(values, "client-cert-auth", ""),
                "needs an https URL in " + mention(values, "listen-client-urls") +
                    ": certificates are checked in the TLS handshake");
  }
  return true;
}

// Peer TLS hangs together: every peer URL (listened, announced, in --initial-cluster) has one
// scheme, https needs a certificate and key (or --peer-auto-tls), and peer files are not given
// for http peers, where they would protect nothing.
bool check_peer_tls(const RawValues& values, ServerConfig* c, std::string* error) {
  c->peer_cert_file = lookup(values, "peer-cert-file", "").text;
  c->peer_key_file = lookup(values, "peer-key-file", "").text;
  c->peer_trusted_ca_file = lookup(values, "peer-trusted-ca-file", "").text;
  if (!parse_bool(lookup(values, "peer-client-cert-auth", "false"), &c->peer_client_cert_auth,
                  error) ||
      !parse_bool(lookup(values, "peer-auto-tls", "false"), &c->peer_auto_tls, error)) {
    return false;
  }
  c->peer_tls = has_https(c->listen_peer_urls);
  if (c->peer_cert_file.empty() != c->peer_key_file.empty()) {
    const char* set = c->peer_cert_file.empty() ? "peer-key-file" : "peer-cert-file";
    const char* unset = c->peer_cert_file.empty() ? "--peer-cert-file" : "--peer-key-file";
    return fail(error, lookup(values, set, ""), std::string("needs ") + unset + " too");
  }
  bool has_files = !c->peer_cert_file.empty() || !c->peer_trusted_ca_file.empty() ||
                   c->peer_client_cert_auth || c->peer_auto_tls;
  if (!c->peer_tls && has_files) {
    const char* flag = !c->peer_cert_file.empty()         ? "peer-cert-file"
                       : !c->peer_trusted_ca_file.empty() ? "peer-trusted-ca-file"
                       : c->peer_client_cert_auth         ? "peer-client-cert-auth"
                                                          : "peer-auto-tls";
    return fail(error, lookup(values, flag, ""),
                "is set, but " + mention(values, "listen-peer-urls") +
                    " is http: use https peer URLs, or drop the peer TLS flags");
  }
  if (c->peer_tls && c->peer_cert_file.empty() && !c->peer_auto_tls) {
    return fail(error, lookup(values, "listen-peer-urls", kDefaultListenPeerUrls),
                "is https: set --peer-cert-file and --peer-key-file (or --peer-auto-tls)");
  }
  auto mixed = [&](const std::vector<Url>& urls) {
    for (const Url& u : urls)
      if ((u.scheme == "https") != c->peer_tls) return true;
    return false;
  };
  const char* scheme = c->peer_tls ? "https" : "http";
  if (mixed(c->listen_peer_urls) || mixed(c->initial_advertise_peer_urls)) {
    return fail(error, lookup(values, "initial-advertise-peer-urls", kDefaultListenPeerUrls),
                "mixes http and https peer URLs: every peer URL is " + std::string(scheme) +
                    ", like the first of " + mention(values, "listen-peer-urls"));
  }
  for (const Member& m : c->initial_cluster) {
    if (mixed(m.peer_urls)) {
      return fail(error, lookup(values, "initial-cluster", kDefaultInitialCluster),
                  "gives member " + in_quotes(m.name) + " a peer URL that is not " + scheme +
                      ", as this member's are: every member of a cluster speaks the same");
    }
  }
  if (c->peer_client_cert_auth && c->peer_trusted_ca_file.empty()) {
    return fail(error, lookup(values, "peer-client-cert-auth", ""),
                "needs --peer-trusted-ca-file, the CA peer certificates must be signed by");
  }
  if (c->peer_tls && !c->peer_auto_tls && c->peer_trusted_ca_file.empty()) {
    return fail(error, lookup(values, "peer-cert-file", ""),
                "needs --peer-trusted-ca-file: without a CA no peer is verified, and anyone "
                "could take part (--peer-auto-tls says so explicitly)");
  }
  if (c->peer_auto_tls && !c->peer_trusted_ca_file.empty()) {
    return fail(error, lookup(values, "peer-auto-tls", ""),
                "cannot go with --peer-trusted-ca-file: a self-signed certificate proves nothing "
                "to a CA");
  }
  return true;
}

// A duration as etcd's flags take them: a Go duration ("5s", "2h"), or "0" / "0s" when
// `allow_zero`; *ms in milliseconds.
bool parse_duration(const RawValue& v, bool allow_zero, int64_t* ms, std::string* error) {
  if (v.text == "0" || v.text == "0s" || v.text == "0ms") {
    if (!allow_zero) return fail(error, v, "must be longer than 0");
    *ms = 0;
    return true;
  }
  if (!parse_go_duration(v.text, ms)) {
    return fail(error, v, in_quotes(v.text) + " is not a duration such as 500ms, 10s or 2h");
  }
  return true;
}

// etcd's (Go's) names of the TLS 1.2 cipher suites and OpenSSL's for them. RC4 and 3DES are
// left out: broken, and OpenSSL 3 no longer offers them.
constexpr std::array<std::pair<std::string_view, std::string_view>, 18> kCipherSuites = {{
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
}};

bool parse_cipher_suites(const RawValue& v, std::vector<std::string>* out, std::string* error) {
  out->clear();
  for (std::string_view item : split_list(v.text)) {
    if (item.empty()) return fail(error, v, "has an empty entry in " + in_quotes(v.text));
    std::string name(item);
    if (name == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256") {
      name = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305";
    }
    auto it = std::find_if(kCipherSuites.begin(), kCipherSuites.end(),
                           [&](const auto& s) { return s.first == name; });
    if (it == kCipherSuites.end()) {
      bool weak = name.find("RC4") != std::string::npos || name.find("3DES") != std::string::npos;
      return fail(error, v,
                  in_quotes(item) + (weak ? " is broken and not offered"
                                          : " is not a TLS 1.2 cipher suite etcd names, as "
                                            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
    }
    if (std::find(out->begin(), out->end(), it->second) == out->end()) {
      out->push_back(std::string(it->second));
    }
  }
  return true;
}

bool parse_tls_version(const RawValue& v, int* out, std::string* error) {
  if (v.text == "TLS1.2") {
    *out = 12;
  } else if (v.text == "TLS1.3") {
    *out = 13;
  } else if (v.text == "TLS1.0" || v.text == "TLS1.1") {
    return fail(error, v, in_quotes(v.text) + " is broken and not offered; want TLS1.2 or TLS1.3");
  } else {
    return fail(error, v, in_quotes(v.text) + " is not one of: TLS1.2, TLS1.3");
  }
  return true;
}

// A comma list in which "*" or nothing means any: {"*"}.
std::vector<std::string> parse_allow_list(const RawValue& v) {
  std::vector<std::string> out;
  for (std::string_view item : split_list(v.text)) {
    if (item == "*") return {"*"};
    if (!item.empty()) out.push_back(lower(item));
  }
  if (out.empty()) out.push_back("*");
  return out;
}

// The etcd flags beyond the basic ones: TLS details, gRPC limits, logging, corruption checks,
// and the flags of what Chorus does not serve (the v2 API, the proxy, Go's profiler), which are
// refused when turned on.
bool build_etcd_extras(const RawValues& values, ServerConfig* c, std::string* error) {
  const ServerConfig d;
  c->client_crl_file = lookup(values, "client-crl-file", "").text;
  c->client_cert_allowed_hostname = lookup(values, "client-cert-allowed-hostname", "").text;
  c->peer_crl_file = lookup(values, "peer-crl-file", "").text;
  c->peer_cert_allowed_cn = lookup(values, "peer-cert-allowed-cn", "").text;
  c->peer_cert_allowed_hostname = lookup(values, "peer-cert-allowed-hostname", "").text;
  c->wal_dir = lookup(values, "wal-dir", "").text;
  c->discovery_srv = lookup(values, "discovery-srv", "").text;
  c->discovery_srv_name = lookup(values, "discovery-srv-name", "").text;
  c->discovery_srv_resolver = lookup(values, "discovery-srv-resolver", "").text;
  c->log_package_levels = lookup(values, "log-package-levels", "").text;
  c->cors = parse_allow_list(lookup(values, "cors", "*"));
  c->host_whitelist = parse_allow_list(lookup(values, "host-whitelist", "*"));
  if (!parse_bool(lookup(values, "experimental-peer-skip-client-san-verification", "false"),
                  &c->peer_skip_client_san_verification, error) ||
      !parse_bool(lookup(values, "force-new-cluster", "false"), &c->force_new_cluster, error) ||
      !parse_bool(lookup(values, "strict-reconfig-check", "true"), &c->strict_reconfig_check,
                  error) ||
      !parse_bool(lookup(values, "pre-vote", "true"), &c->pre_vote, error) ||
      !parse_bool(lookup(values, "experimental-initial-corrupt-check", "false"),
                  &c->initial_corrupt_check, error) ||
      !parse_bool(lookup(values, "experimental-enable-lease-checkpoint", "false"),
                  &c->lease_checkpoint, error) ||
      !parse_cipher_suites(lookup(values, "cipher-suites", ""), &c->cipher_suites, error) ||
      !parse_tls_version(lookup(values, "tls-min-version", "TLS1.2"), &c->tls_min_version, error) ||
      !parse_tls_version(lookup(values, "tls-max-version", "TLS1.3"), &c->tls_max_version, error) ||
      !parse_duration(lookup(values, "grpc-keepalive-min-time", "5s"), false,
                      &c->grpc_keepalive_min_time_ms, error) ||
      !parse_duration(lookup(values, "grpc-keepalive-interval", "2h"), true,
                      &c->grpc_keepalive_interval_ms, error) ||
      !parse_duration(lookup(values, "grpc-keepalive-timeout", "20s"), true,
                      &c->grpc_keepalive_timeout_ms, error) ||
      !parse_duration(lookup(values, "experimental-corrupt-check-time", "0s"), true,
                      &c->corrupt_check_ms, error) ||
      !parse_duration(lookup(values, "experimental-lease-checkpoint-interval", "5m"), false,
                      &c->lease_checkpoint_interval_ms, error) ||
      !parse_duration(lookup(values, "experimental-warning-apply-duration", "100ms"), false,
                      &c->warning_apply_ms, error) ||
      !parse_setting(values, "max-concurrent-streams", d.max_concurrent_streams, 1, UINT32_MAX,
                     &c->max_concurrent_streams, error)) {
    return false;
  }
  if (const RawValue* v = find(values, "experimental-watch-progress-notify-interval")) {
    if (!parse_duration(*v, false, &c->watch_progress_notify_ms, error)) return false;
  }
  if (c->tls_min_version > c->tls_max_version) {
    return fail(error, lookup(values, "tls-min-version", ""),
                "is newer than " + mention(values, "tls-max-version"));
  }
  if (!c->cipher_suites.empty() && c->tls_min_version == 13) {
    return fail(error, lookup(values, "cipher-suites", ""),
                "cannot go with --tls-min-version TLS1.3, whose cipher suites are fixed");
  }
  if (!c->client_crl_file.empty() && c->trusted_ca_file.empty()) {
    return fail(error, lookup(values, "client-crl-file", ""),
                "needs --trusted-ca-file: only clients with certificates can be revoked");
  }
  if (!c->client_cert_allowed_hostname.empty() && !c->client_cert_auth) {
    return fail(error, lookup(values, "client-cert-allowed-hostname", ""),
                "needs --client-cert-auth: without client certificates there is no name to check");
  }
  for (const char* flag : {"peer-crl-file", "peer-cert-allowed-cn", "peer-cert-allowed-hostname"}) {
    if (!lookup(values, flag, "").text.empty() &&
        lookup(values, "peer-trusted-ca-file", "").text.empty()) {
      return fail(error, lookup(values, flag, ""),
                  "needs --peer-trusted-ca-file: peers are verified against a CA first");
    }
  }
  std::string choice;
  if (!parse_choice(lookup(values, "logger", "zap"), {"zap", "capnslog"}, &choice, error) ||
      !parse_choice(lookup(values, "metrics", "basic"), {"basic", "extensive"}, &choice, error)) {
    return false;
  }
  c->extensive_metrics = choice == "extensive";
  c->log_outputs.clear();
  const RawValue outputs = lookup(values, "log-outputs", "default");
  for (std::string_view item : split_list(outputs.text)) {
    if (item.empty())
      return fail(error, outputs, "has an empty entry in " + in_quotes(outputs.text));
    std::string o = item == "default" ? "stderr" : std::string(item);
    if (std::find(c->log_outputs.begin(), c->log_outputs.end(), o) == c->log_outputs.end()) {
      c->log_outputs.push_back(o);
    }
  }
  if (c->log_outputs.empty()) c->log_outputs.push_back("stderr");

  // What Chorus does not serve: refused when turned on, accepted when off.
  bool on = false;
  if (!parse_bool(lookup(values, "enable-v2", "false"), &on, error)) return false;
  if (on) {
    return fail(error, lookup(values, "enable-v2", ""),
                "the v2 API is not served: Chorus serves etcd's v3 API only");
  }
  if (!lookup(values, "experimental-enable-v2v3", "").text.empty()) {
    return fail(error, lookup(values, "experimental-enable-v2v3", ""),
                "the v2 API is not served, through the v3 store or otherwise");
  }
  if (!parse_bool(lookup(values, "enable-pprof", "false"), &on, error)) return false;
  if (on) {
    return fail(error, lookup(values, "enable-pprof", ""),
                "Go's profiling endpoints do not exist in Chorus; profile a member with perf "
                "(docs/OPERATIONS.md)");
  }
  if (!parse_choice(lookup(values, "proxy", "off"), {"off", "readonly", "on"}, &choice, error)) {
    return false;
  }
  if (choice != "off") {
    return fail(error, lookup(values, "proxy", ""),
                "etcd's v2 proxy is not served: point clients at the members' client URLs (the "
                "v3 clients balance over them)");
  }
  if (!lookup(values, "discovery", "").text.empty()) {
    return fail(error, lookup(values, "discovery", ""),
                "etcd's discovery service speaks the v2 API, which Chorus does not: use "
                "--discovery-srv or --initial-cluster");
  }
  if (!parse_choice(lookup(values, "discovery-fallback", "proxy"), {"exit", "proxy"}, &choice,
                    error) ||
      !parse_choice(lookup(values, "experimental-backend-bbolt-freelist-type", "array"),
                    {"array", "map"}, &choice, error)) {
    return false;
  }
  uint64_t unused = 0;
  for (const char* flag : {"proxy-failure-wait", "proxy-refresh-interval", "proxy-dial-timeout",
                           "proxy-write-timeout", "proxy-read-timeout", "max-snapshots", "max-wals",
                           "backend-batch-limit", "experimental-compaction-batch-limit"}) {
    if (!parse_number(lookup(values, flag, "0"), 0, std::numeric_limits<int64_t>::max(), &unused,
                      error)) {
      return false;
    }
  }
  if (const RawValue* v = find(values, "backend-batch-interval");
      v != nullptr && !v->text.empty()) {
    int64_t ms = 0;
    if (!parse_duration(*v, true, &ms, error)) return false;
  }
  bool advance = true;
  if (!parse_bool(lookup(values, "initial-election-tick-advance", "true"), &advance, error)) {
    return false;
  }
  if (!c->discovery_srv_resolver.empty()) {
    Url u;
    std::string why;
    if (!parse_url("http://" + c->discovery_srv_resolver, &u, &why)) {
      return fail(error, lookup(values, "discovery-srv-resolver", ""),
                  "is not host:port, as in 10.0.0.2:53");
    }
  }
  return true;
}

bool build(const RawValues& values, ServerConfig* c, std::string* error) {
  const ServerConfig defaults;
  if (!parse_text(lookup(values, "name", defaults.name), &c->name, error)) return false;
  if (!parse_text(lookup(values, "data-dir", c->name + ".chorus"), &c->data_dir, error)) {
    return false;
  }

  // Announced URLs default to the listened ones, named as such should they be unannounceable
  // (0.0.0.0).
  auto urls = [&](std::string_view listen_flag, std::string_view listen_default,
                  std::string_view advertise_flag, const char* no_https, std::vector<Url>* listen,
                  std::vector<Url>* advertise) {
    RawValue l = lookup(values, listen_flag, listen_default);
    if (!parse_url_list(l, UrlUse::kListen, false, no_https, listen, error)) return false;
    RawValue a = lookup(values, advertise_flag, "");
    if (find(values, advertise_flag) == nullptr) {
      a = RawValue{l.text, "--" + std::string(advertise_flag) + " (unset, so the --" +
                               std::string(listen_flag) + " from " + l.where + ")"};
    }
    return parse_url_list(a, UrlUse::kAdvertise, false, no_https, advertise, error);
  };
  if (!urls("listen-client-urls", kDefaultListenClientUrls, "advertise-client-urls", nullptr,
            &c->listen_client_urls, &c->advertise_client_urls) ||
      !urls("listen-peer-urls", kDefaultListenPeerUrls, "initial-advertise-peer-urls", nullptr,
            &c->listen_peer_urls, &c->initial_advertise_peer_urls) ||
      !parse_url_list(lookup(values, "listen-metrics-urls", ""), UrlUse::kListen, true,
                      "the metrics listeners serve plain HTTP only", &c->listen_metrics_urls,
                      error) ||
      !parse_redis_urls(lookup(values, "listen-redis-urls", ""), &c->listen_redis_urls, error)) {
    return false;
  }

  if (!check_tls(values, c, error)) return false;

  const uint64_t kMaxInt = INT_MAX;
  const uint64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
  const uint64_t kMaxUint64 = std::numeric_limits<uint64_t>::max();
  if (!parse_setting(values, "heartbeat-interval", defaults.heartbeat_interval_ms, 1, kMaxInt,
                     &c->heartbeat_interval_ms, error) ||
      !parse_setting(values, "election-timeout", defaults.election_timeout_ms, 1,
                     kMaxElectionTimeoutMs, &c->election_timeout_ms, error) ||
      !parse_setting(values, "snapshot-count", defaults.snapshot_count, 1, kMaxUint64,
                     &c->snapshot_count, error) ||
      !parse_setting(values, "quota-backend-bytes", defaults.quota_backend_bytes, 0, kMaxInt64,
                     &c->quota_backend_bytes, error) ||
      !parse_setting(values, "max-request-bytes", defaults.max_request_bytes, 1,
                     kMaxRequestBytesLimit, &c->max_request_bytes, error) ||
      !parse_setting(values, "max-txn-ops", defaults.max_txn_ops, 1, kMaxInt, &c->max_txn_ops,
                     error) ||
      !parse_setting(values, "initial-groups", defaults.initial_groups, 0, kMaxInitialGroups,
                     &c->initial_groups, error) ||
      !parse_setting(values, "group-metrics", defaults.group_metrics, 0, kMaxGroupMetrics,
                     &c->group_metrics, error) ||
      !parse_setting(values, "slow-request-ms", defaults.slow_request_ms, 0, kMaxInt64,
                     &c->slow_request_ms, error) ||
      !parse_setting(values, "watch-progress-notify-ms", defaults.watch_progress_notify_ms, 100,
                     kMaxInt64, &c->watch_progress_notify_ms, error) ||
      !parse_setting(values, "bcrypt-cost", defaults.bcrypt_cost, 4, 31, &c->bcrypt_cost, error) ||
      !parse_setting(values, "auth-token-ttl", defaults.auth_token_ttl_s, 1, 31'536'000,
                     &c->auth_token_ttl_s, error)) {
    return false;
  }
  {
    std::string mode;
    RawValue m = lookup(values, "auto-compaction-mode", "periodic");
    if (!parse_choice(m, {"periodic", "revision"}, &mode, error)) return false;
    c->auto_compaction_mode =
        mode == "revision" ? CompactionMode::kRevision : CompactionMode::kPeriodic;
    RawValue r = lookup(values, "auto-compaction-retention", "0");
    std::string why;
    if (!parse_compaction_retention(c->auto_compaction_mode, r.text, &c->auto_compaction_retention,
                                    &why)) {
      return fail(error, r, why);
    }
  }
  {
    // The JWT options (keys, method, ttl) are checked when the member loads the keys.
    RawValue v = lookup(values, "auth-token", defaults.auth_token);
    if (v.text == "jwt" || v.text.starts_with("jwt,")) {
      c->auth_token = v.text;
    } else if (!parse_choice(v, {"simple", "jwt,..."}, &c->auth_token, error)) {
      return false;
    }
  }
  if (c->quota_backend_bytes == 0) c->quota_backend_bytes = defaults.quota_backend_bytes;
  // etcd's rule: with fewer than five heartbeats per timeout, one lost heartbeat or a slow
  // disk starts an election.
  if (int64_t{c->election_timeout_ms} < int64_t{5} * c->heartbeat_interval_ms) {
    return fail(error, lookup(values, "election-timeout", ""),
                std::to_string(c->election_timeout_ms) + " ms must be at least 5 times " +
                    mention(values, "heartbeat-interval") + ", which is " +
                    std::to_string(c->heartbeat_interval_ms) + " ms");
  }

  if (!build_etcd_extras(values, c, error)) return false;

  std::string state;
  if (!parse_choice(lookup(values, "log-level", defaults.log_level),
                    {"debug", "info", "warn", "error", "panic", "fatal"}, &c->log_level, error) ||
      !parse_choice(lookup(values, "initial-cluster-state", "new"), {"new", "existing"}, &state,
                    error) ||
      !parse_choice(lookup(values, "unsafe-test-fault", "none"),
                    {"none", "stale-reads", "corrupt-writes"}, &c->unsafe_test_fault, error) ||
      !parse_bool(lookup(values, "lease-reads", "false"), &c->lease_reads, error) ||
      !parse_bool(lookup(values, "quiesce-groups", "true"), &c->quiesce_groups, error)) {
    return false;
  }
  c->initial_cluster_new = state == "new";
  // The token may be empty, as in etcd; it only salts the ids.
  c->initial_cluster_token =
      lookup(values, "initial-cluster-token", defaults.initial_cluster_token).text;
  if (bool debug = false; !parse_bool(lookup(values, "debug", "false"), &debug, error)) {
    return false;
  } else if (debug) {
    c->log_level = "debug";
  }
  if (c->auto_tls && c->cert_file.empty() && !c->discovery_srv.empty()) {
    return fail(error, lookup(values, "auto-tls", ""),
                "serves a self-signed certificate the other members cannot verify; with "
                "--discovery-srv, give the members --cert-file and --trusted-ca-file from one CA");
  }
  if (!c->discovery_srv.empty()) {
    // The members come from DNS when the member starts (discover_srv_cluster, then
    // adopt_discovered_cluster); the flags are checked here.
    if (find(values, "initial-cluster") != nullptr) {
      return fail(error, lookup(values, "discovery-srv", ""),
                  "cannot go with " + mention(values, "initial-cluster") +
                      ": the members come from one or the other");
    }
    return check_peer_tls(values, c, error);
  }
  if (!parse_cluster(lookup(values, "initial-cluster", kDefaultInitialCluster), &c->initial_cluster,
                     error)) {
    return false;
  }
  if (c->auto_tls && c->cert_file.empty() && c->initial_cluster.size() > 1) {
    return fail(error, lookup(values, "auto-tls", ""),
                "serves a self-signed certificate the other members cannot verify when they "
                "call this one (forwarding to the leader, fetching a snapshot): give a cluster of "
                "more than one member --cert-file and --trusted-ca-file from one CA");
  }
  return check_peer_tls(values, c, error) && check_cluster(values, c, error);
}

ParseOutcome parse(int argc, const char* const* argv, const std::map<std::string, std::string>& env,
                   ServerConfig* out, std::string* message) {
  RawValues flags;
  switch (parse_args(argc, argv, &flags, message)) {
    case ParseOutcome::kRun:
      break;
    case ParseOutcome::kHelp:
      *message = help_text();
      return ParseOutcome::kHelp;
    case ParseOutcome::kVersion:
      *message = "chorusd version " CHORUS_VERSION_STRING " (etcd v3 API)\n";
      return ParseOutcome::kVersion;
    case ParseOutcome::kError:
      return ParseOutcome::kError;
  }
  RawValues from_env;
  if (!read_env(env, &from_env, message)) return ParseOutcome::kError;

  // The file is named by the command line or the environment, never by itself.
  RawValues values;
  const RawValue* file = find(flags, "config-file");
  if (file == nullptr) file = find(from_env, "config-file");
  if (file != nullptr && !file->text.empty() && !read_config_file(*file, &values, message)) {
    return ParseOutcome::kError;
  }
  for (auto& [flag, value] : from_env)
    values[flag] = std::move(value);
  for (auto& [flag, value] : flags)
    values[flag] = std::move(value);

  ServerConfig config;
  if (!build(values, &config, message)) return ParseOutcome::kError;
  config.config_file = lookup(values, "config-file", "").text;
  *out = std::move(config);
  return ParseOutcome::kRun;
}

// FNV-1a over length-prefixed fields, then MurmurHash3's finalizer so that nearby inputs
// (URLs differing in one digit) give unrelated ids. Ids are persisted: never change this.
class IdHash {
 public:
  explicit IdHash(std::string_view domain) { add(domain); }
  void add(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void add(std::string_view s) {
    add(uint64_t{s.size()});
    for (char ch : s)
      byte(static_cast<uint8_t>(ch));
  }
  uint64_t finish() const {
    uint64_t h = state_;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h == 0 ? 1 : h;  // 0 is raft's "no node"
  }

 private:
  void byte(uint8_t b) {
    state_ ^= b;
    state_ *= 0x100000001b3ULL;
  }
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace

std::string Url::to_string() const {
  std::string h = host.find(':') == std::string::npos ? host : "[" + host + "]";
  return scheme + "://" + h + ":" + std::to_string(port);
}

bool parse_peer_url(std::string_view text, Url* out, std::string* error) {
  return parse_url(text, out, error);
}

bool parse_go_duration(std::string_view text, int64_t* ms) {
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return false;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
      ++i;
    if (i == start || i - start > 12) return false;
    int64_t n = std::stoll(std::string(text.substr(start, i - start)));
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
      ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    int64_t scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else {
      return false;
    }
    total += n * scale;
  }
  *ms = total;
  return total > 0;
}

bool parse_compaction_retention(CompactionMode mode, const std::string& text, int64_t* out,
                                std::string* error) {
  if (text == "0" || text.empty()) {
    *out = 0;
    return true;
  }
  bool digits = text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 12;
  if (mode == CompactionMode::kRevision) {
    if (!digits) {
      *error = "'" + text + "' is not a number of revisions";
      return false;
    }
    *out = std::stoll(text);
    return true;
  }
  if (digits) {  // etcd: a bare number is hours
    *out = std::stoll(text) * 3'600'000;
    return true;
  }
  if (!parse_go_duration(text, out)) {
    *error = "'" + text + "' is not a duration such as 30m or 1h, nor a number of hours";
    return false;
  }
  return true;
}

bool has_https(const std::vector<Url>& urls) {
  return std::any_of(urls.begin(), urls.end(), [](const Url& u) { return u.scheme == "https"; });
}

std::string join_urls(const std::vector<Url>& urls) {
  std::string out;
  for (const Url& u : urls)
    out += (out.empty() ? "" : ",") + u.to_string();
  return out;
}

bool parse_url(std::string_view text, Url* out, std::string* error) {
  auto bad = [&](std::string_view why) {
    *error = in_quotes(text) + " " + std::string(why);
    return false;
  };
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return bad("is not a URL: it needs a scheme, as in http://10.0.0.1:2379");
  }
  const std::string scheme = lower(text.substr(0, sep));
  if (scheme == "unix" || scheme == "unixs") {
    return bad("is a unix socket; only http://host:port is supported");
  }
  if (scheme != "http" && scheme != "https") {
    return bad("has scheme " + in_quotes(scheme) + "; only http and https are supported");
  }
  std::string_view rest = text.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (end != std::string_view::npos && rest.substr(end) != "/") {
    return bad("has a path, query or fragment; give only http://host:port");
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad("has user information; give only http://host:port");
  }
  std::string host;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '[' in its host");
    host = lower(authority.substr(1, close - 1));
    if (!is_ip(host, AF_INET6)) return bad("has brackets around something not an IPv6 address");
    std::string_view after = authority.substr(close + 1);
    if (after.empty()) return bad("has no port, as in http://[::1]:2379");
    if (after[0] != ':') return bad("has text between ']' and the port");
    port = after.substr(1);
  } else {
    size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) return bad("has no port, as in http://10.0.0.1:2379");
    host = lower(authority.substr(0, colon));
    port = authority.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return bad("has an IPv6 address without brackets, as in http://[::1]:2379");
    }
    if (host.empty()) return bad("has no host");
    bool valid = std::all_of(host.begin(), host.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_';
    });
    if (!valid) return bad("has an invalid host name");
  }
  if (port.empty()) return bad("has no port");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (!all_digits(port) || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return bad("has an invalid port; want a number from 0 to 65535");
  }
  *out = Url{scheme, std::move(host), static_cast<uint16_t>(value)};
  return true;
}

bool adopt_discovered_cluster(const std::string& initial_cluster, ServerConfig* c,
                              std::string* error) {
  RawValues values;
  values["initial-cluster"] =
      RawValue{initial_cluster, "the SRV records of --discovery-srv " + c->discovery_srv};
  if (!parse_cluster(values["initial-cluster"], &c->initial_cluster, error)) return false;
  for (const Member& m : c->initial_cluster) {
    for (const Url& u : m.peer_urls) {
      if ((u.scheme == "https") != c->peer_tls) {
        return fail(error, values["initial-cluster"],
                    "give member " + in_quotes(m.name) + " a peer URL of the other scheme");
      }
    }
    // Every member derives ids from the URLs as DNS names them, so this member announces
    // those (they resolve to the addresses it advertised, or it would not have been found).
    if (m.name == c->name) c->initial_advertise_peer_urls = m.peer_urls;
  }
  return check_cluster(values, c, error);
}

ParseOutcome parse_config(int argc, const char* const* argv,
                          const std::map<std::string, std::string>& env, ServerConfig* out,
                          std::string* message) {
  // yaml-cpp and the standard library may throw (bad_alloc, a parser bug); a configuration
  // error must reach the operator as a message, not as a crash.
  try {
    return parse(argc, argv, env, out, message);
  } catch (const std::exception& e) {
    *message = std::string("reading the configuration failed: ") + e.what();
  } catch (...) {
    *message = "reading the configuration failed";
  }
  return ParseOutcome::kError;
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

uint64_t compute_member_id(const std::vector<Url>& peer_urls, std::string_view token) {
  IdHash h("chorus member");
  std::vector<std::string> urls = sorted_strings(peer_urls);
  h.add(uint64_t{urls.size()});
  for (const std::string& u : urls)
    h.add(std::string_view(u));
  h.add(token);
  return h.finish();
}

uint64_t compute_added_member_id(const std::vector<Url>& peer_urls, std::string_view token,
                                 uint64_t salt) {
  IdHash h("chorus added member");
  h.add(compute_member_id(peer_urls, token));
  h.add(salt);
  return h.finish();
}

uint64_t compute_cluster_id(const std::vector<uint64_t>& member_ids, std::string_view token) {
  IdHash h("chorus cluster");
  std::vector<uint64_t> ids = member_ids;
  std::sort(ids.begin(), ids.end());
  h.add(uint64_t{ids.size()});
  for (uint64_t id : ids)
    h.add(id);
  h.add(token);
  return h.finish();
}

}  // namespace chorus::server
