// SORT and SORT_RO: the elements of a list, set or sorted set, ordered as numbers or (ALPHA)
// as bytes, with BY and GET patterns read from this group's keys (the connection checks that
// a pattern's keys share the sorted key's group, as Redis Cluster wants them in its slot).
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;

// Every element of a collection (a list's in order, a zset's members in score order).
std::vector<std::string> members(Keys& k, const Record& rec) {
  std::vector<std::pair<std::string, std::string>> got;
  std::string prefix = element_key(rec.version);
  if (rec.type == kZset) prefix += 's';
  k.store().scan_elements(prefix, "", std::numeric_limits<size_t>::max(), &got);
  std::vector<std::string> out;
  out.reserve(got.size());
  for (auto& [key, value] : got) {
    if (rec.type == kList) {
      out.push_back(std::move(value));
    } else if (rec.type == kZset) {
      out.push_back(key.substr(prefix.size() + 8));  // past the sortable score
    } else {
      out.push_back(key.substr(prefix.size()));
    }
  }
  return out;
}

// A BY or GET pattern's value for one element: `#` is the element itself; otherwise the
// first `*` takes the element, and `key->field` reads a hash's field. Null if absent.
std::optional<std::string> lookup(Keys& k, const std::string& pattern, const std::string& elem) {
  if (pattern == "#") return elem;
  const size_t star = pattern.find('*');
  if (star == std::string::npos) return std::nullopt;
  std::string key = pattern.substr(0, star) + elem + pattern.substr(star + 1);
  std::string field;
  const size_t arrow = key.find("->", star + elem.size());
  if (arrow != std::string::npos && arrow + 2 < key.size()) {
    field = key.substr(arrow + 2);
    key.resize(arrow);
  }
  Record r;
  if (k.load(key, &r) != Keys::Found::kLive) return std::nullopt;
  if (field.empty()) {
    if (r.type != kString) return std::nullopt;
    return r.value;
  }
  if (r.type != kHash) return std::nullopt;
  std::string v;
  if (!k.store().get_element(element_key(r.version, field), &v)) return std::nullopt;
  return v;
}

Reply sort(Keys& k, const Args& a, bool read_only) {
  bool desc = false, alpha = false, sorted = true;
  std::optional<std::string> by;
  std::vector<std::string> gets;
  std::optional<std::string> store;
  int64_t offset = 0, count = -1;
  for (size_t i = 2; i < a.size(); ++i) {
    const size_t left = a.size() - i - 1;
    if (equals_ci(a[i], "asc")) {
      desc = false;
    } else if (equals_ci(a[i], "desc")) {
      desc = true;
    } else if (equals_ci(a[i], "alpha")) {
      alpha = true;
    } else if (equals_ci(a[i], "limit") && left >= 2) {
      if (!parse_int64(a[i + 1], &offset) || !parse_int64(a[i + 2], &count))
        return Reply::error(errors::kNotInteger);
      i += 2;
    } else if (equals_ci(a[i], "store") && left >= 1 && !read_only) {
      store = a[++i];
    } else if (equals_ci(a[i], "by") && left >= 1) {
      by = a[++i];
      // A pattern without `*` names no key per element: the elements stay in their order.
      if (by->find('*') == std::string::npos) sorted = false;
    } else if (equals_ci(a[i], "get") && left >= 1) {
      gets.push_back(a[++i]);
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  Record rec;
  Keys::Found f = k.load(a[1], &rec);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  std::vector<std::string> elems;
  if (f == Keys::Found::kLive) {
    if (rec.type != kList && rec.type != kSet && rec.type != kZset)
      return Reply::error(errors::kWrongType);
    elems = members(k, rec);
  }
  // A sorted set without sorting keeps its score order (reversed by DESC), as Redis does.
  if (!sorted && f == Keys::Found::kLive && rec.type == kZset && desc)
    std::reverse(elems.begin(), elems.end());
  if (sorted) {
    struct Item {
      std::string elem;
      std::optional<std::string> key;  // what it sorts by
      double number = 0;
    };
    std::vector<Item> items;
    items.reserve(elems.size());
    for (std::string& e : elems) {
      Item it{std::move(e), std::nullopt, 0};
      it.key = by ? lookup(k, *by, it.elem) : std::optional<std::string>(it.elem);
      if (!alpha && it.key) {
        char* end = nullptr;
        it.number = std::strtod(it.key->c_str(), &end);
        if (it.key->empty() || end != it.key->c_str() + it.key->size() || std::isnan(it.number))
          return Reply::error("ERR One or more scores can't be converted into double");
      }
      items.push_back(std::move(it));
    }
    std::stable_sort(items.begin(), items.end(), [&](const Item& x, const Item& y) {
      int c = 0;
      if (alpha && (!x.key || !y.key)) {
        c = x.key ? 1 : (y.key ? -1 : 0);  // a missing key sorts first
      } else if (alpha) {
        c = x.key->compare(*y.key);
      } else {
        c = x.number < y.number ? -1 : (x.number > y.number ? 1 : 0);
      }
      if (c == 0) c = x.elem.compare(y.elem);
      return desc ? c > 0 : c < 0;
    });
    elems.clear();
    for (Item& it : items)
      elems.push_back(std::move(it.elem));
  }
  // LIMIT, clamped as Redis clamps it.
  const int64_t n = static_cast<int64_t>(elems.size());
  int64_t start = std::clamp<int64_t>(offset, 0, n);
  int64_t end = count < 0 || count > n - start ? n : start + count;
  std::vector<std::optional<std::string>> out;
  for (int64_t i = start; i < end; ++i) {
    const std::string& e = elems[static_cast<size_t>(i)];
    if (gets.empty()) {
      out.push_back(e);
    } else {
      for (const std::string& g : gets)
        out.push_back(lookup(k, g, e));
    }
  }
  if (store) {
    k.remove(*store);
    Record list;
    list.type = kList;
    list.version = k.new_version();
    for (auto& v : out) {
      k.store().put_element(
          element_key(list.version, position_key(list.head + static_cast<int64_t>(list.size))),
          v.value_or(""));
      ++list.size;
    }
    save_collection(k, *store, list);
    return Reply::integer_of(static_cast<int64_t>(list.size));
  }
  std::vector<Reply> replies;
  for (auto& v : out)
    replies.push_back(v ? Reply::bulk(std::move(*v)) : Reply::null());
  return Reply::array(std::move(replies));
}

Reply cmd_sort(Keys& k, const Args& a) {
  return sort(k, a, false);
}
Reply cmd_sort_ro(Keys& k, const Args& a) {
  return sort(k, a, true);
}

}  // namespace

const std::vector<Entry>& sort_entries() {
  static const std::vector<Entry> table = {
      {{"sort", -2, kWrite, 1, 1, 1}, cmd_sort},
      {{"sort_ro", -2, kReadOnly, 1, 1, 1}, cmd_sort_ro},
  };
  return table;
}

}  // namespace chorus::redis::internal
