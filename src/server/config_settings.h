// The settings chorusd knows: every flag's name, placeholder, default and help, in --help's
// order. Internal to the configuration (config.cc parses values; this file only lists them).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace chorus::server::config_detail {

inline constexpr std::string_view kDefaultListenClientUrls = "http://localhost:2379";
inline constexpr std::string_view kDefaultListenPeerUrls = "http://localhost:2380";
inline constexpr std::string_view kDefaultInitialCluster = "default=http://localhost:2380";

struct Setting {
  std::string_view group;  // heading in --help
  std::string_view flag;
  std::string_view value;  // placeholder in --help; empty for a boolean
  std::string_view default_text;
  std::string_view help;
  bool list = false;  // may be a YAML sequence
};

// Every setting, grouped as --help shows them.
std::span<const Setting> settings();
const Setting* find_setting(std::string_view flag);
// chorusd --help.
std::string help_text();

}  // namespace chorus::server::config_detail
