// Streams: XADD, XRANGE, XREAD, consumer groups (Redis 7.0).
//
// A stream is a key record of type kStream with the stream's version and its length (XLEN), and
// element records under the version (records.h):
//   'm'                       -> the stream's metadata (Meta)
//   'e' id                    -> an entry: the node it went into, then its fields and values
//   'n' id                    -> a node: the entries appended since it opened at `id` (Node)
//   'g' group                 -> a consumer group (Group)
//   'c' group' consumer       -> a consumer of the group: its seen time
//   'p' group' id             -> a pending entry (Nack): consumer, delivery time and count
//   'q' group' consumer' id   -> nothing: the consumer's pending entries, in ID order
// An id is 16 bytes, ms then seq, big-endian, so scans go in ID order; group' and consumer' are
// the names after their length (4 bytes, big-endian), so no name is a prefix of another's records.
//
// Nodes stand for the radix-tree nodes of Redis's streams: XADD opens one every
// kNodeMaxEntries entries, and approximate trimming (MAXLEN ~, MINID ~) removes only whole
// nodes, as Redis does, so XLEN after it is what Redis answers with the same node size. They also
// let a backwards range go node by node (the store scans forwards only).
//
// Empty streams stay (Redis keeps them): a stream's record is saved as it is, never removed for
// being empty. The state machine never blocks: XREAD and XREADGROUP answer a null array when
// there is nothing to give, and the connection waits for writes to the keys (see \x01xready).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
// Entries per node: Redis's default stream-node-max-entries. A member's CONFIG SET of it is not
// in the log, so every replica counts with the default.
constexpr uint64_t kNodeMaxEntries = 100;
// Approximate trimming without LIMIT removes at most this many entries, as Redis's default.
constexpr int64_t kDefaultTrimLimit = 100 * kNodeMaxEntries;
// Records read per scan: ID-ordered walks start with a few (most stop early) and read more per
// scan as they go on.
constexpr size_t kFirstPage = 8;
constexpr size_t kPage = 256;
// The largest total of an entry's fields and values (Redis's listpack bound).
constexpr size_t kMaxEntryBytes = size_t{1} << 30;
constexpr uint8_t kMetaFormat = 1;

// ---- IDs ---------------------------------------------------------------------------------------

struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;
  auto operator<=>(const StreamId&) const = default;
  bool zero() const { return ms == 0 && seq == 0; }
};
constexpr StreamId kMinId{0, 0};
constexpr StreamId kMaxId{kU64Max, kU64Max};

std::string id_text(const StreamId& id) {
  return std::to_string(id.ms) + "-" + std::to_string(id.seq);
}
Reply id_reply(const StreamId& id) {
  return Reply::bulk(id_text(id));
}

void put_id(std::string* out, const StreamId& id) {
  base::put_u64_be(out, id.ms);
  base::put_u64_be(out, id.seq);
}
std::string id_bytes(const StreamId& id) {
  std::string out;
  put_id(&out, id);
  return out;
}
StreamId load_id(const char* p) {
  return StreamId{base::load_u64_be(p), base::load_u64_be(p + 8)};
}
bool read_id(base::Reader& r, StreamId* id) {
  std::string_view v;
  if (!r.view(16, &v)) return false;
  *id = load_id(v.data());
  return true;
}

// The next ID; false (and 0-0) past the last one.
bool incr_id(StreamId* id) {
  if (id->seq != kU64Max) {
    ++id->seq;
    return true;
  }
  if (id->ms == kU64Max) {
    *id = kMinId;
    return false;
  }
  *id = StreamId{id->ms + 1, 0};
  return true;
}
// The ID before; false (and the last ID) before 0-0.
bool decr_id(StreamId* id) {
  if (id->seq != 0) {
    --id->seq;
    return true;
  }
  if (id->ms == 0) {
    *id = kMaxId;
    return false;
  }
  *id = StreamId{id->ms - 1, kU64Max};
  return true;
}

Reply invalid_id() {
  return Reply::error("ERR Invalid stream ID specified as stream command argument");
}

// As Redis's string2ull: a strict integer that is not negative, or what strtoull takes whole.
bool parse_u64(const std::string& s, uint64_t* out) {
  int64_t v = 0;
  if (parse_int64(s, &v)) {
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long u = std::strtoull(s.c_str(), &end, 10);
  if (errno == EINVAL || errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = u;
  return true;
}

// An ID as clients write it (Redis's streamGenericParseIDOrReply): ms-seq, or ms alone (the
// sequence is then `missing_seq`), "-" and "+" for the least and greatest unless `strict`. With
// `seq_given`, ms-* is taken too, and *seq_given says whether the sequence was there.
bool parse_id(std::string_view arg, uint64_t missing_seq, bool strict, StreamId* id,
              bool* seq_given = nullptr) {
  if (arg.size() > 127) return false;
  const std::string buf(arg.substr(0, arg.find('\0')));  // Redis reads it as a C string
  if (strict && (buf == "-" || buf == "+")) return false;
  if (seq_given != nullptr) *seq_given = true;
  if (buf == "-") {
    *id = kMinId;
    return true;
  }
  if (buf == "+") {
    *id = kMaxId;
    return true;
  }
  const size_t dash = buf.find('-');
  uint64_t ms = 0;
  uint64_t seq = missing_seq;
  if (!parse_u64(buf.substr(0, dash), &ms)) return false;
  if (dash != std::string::npos) {
    const std::string rest = buf.substr(dash + 1);
    if (seq_given != nullptr && rest == "*") {
      seq = 0;
      *seq_given = false;
    } else if (!parse_u64(rest, &seq)) {
      return false;
    }
  }
  *id = StreamId{ms, seq};
  return true;
}

// One end of a range (XRANGE, XPENDING, XAUTOCLAIM): "(id" leaves the ID out. A start without
// its sequence starts at ms-0, an end at ms-<max>.
std::optional<Reply> parse_range_end(std::string_view arg, bool start, StreamId* id) {
  const bool exclude = arg.size() > 1 && arg[0] == '(';
  if (!parse_id(exclude ? arg.substr(1) : arg, start ? 0 : kU64Max, exclude, id))
    return invalid_id();
  if (exclude && start && !incr_id(id))
    return Reply::error("ERR invalid start ID for the interval");
  if (exclude && !start && !decr_id(id)) return Reply::error("ERR invalid end ID for the interval");
  return std::nullopt;
}

// ---- records -----------------------------------------------------------------------------------

struct Meta {
  StreamId last;         // last-generated-id
  StreamId first;        // recorded-first-entry-id: the first entry, 0-0 when empty
  StreamId max_deleted;  // max-deleted-entry-id
  uint64_t entries_added = 0;
  uint64_t nodes = 0;   // radix-tree-keys
  uint64_t groups = 0;  // consumer groups
  bool has_tail = false;
  StreamId tail;  // the node XADD appends to, while it has room
};

std::string encode_meta(const Meta& m) {
  std::string out;
  base::put_u8(&out, kMetaFormat);
  put_id(&out, m.last);
  put_id(&out, m.first);
  put_id(&out, m.max_deleted);
  base::put_u64(&out, m.entries_added);
  base::put_u64(&out, m.nodes);
  base::put_u64(&out, m.groups);
  base::put_u8(&out, m.has_tail ? 1 : 0);
  put_id(&out, m.tail);
  return out;
}

bool decode_meta(std::string_view bytes, Meta* m) {
  base::Reader r(bytes);
  uint8_t format = 0;
  return r.u8(&format) && format == kMetaFormat && read_id(r, &m->last) && read_id(r, &m->first) &&
         read_id(r, &m->max_deleted) && r.u64(&m->entries_added) && r.u64(&m->nodes) &&
         r.u64(&m->groups) && r.boolean(&m->has_tail) && read_id(r, &m->tail) && r.done();
}

struct Node {
  StreamId first;      // its first entry's ID: its key
  uint64_t live = 0;   // entries in it that are not deleted
  uint64_t total = 0;  // entries appended to it, deleted ones too (it is full at kNodeMaxEntries)
  StreamId last;       // the greatest ID appended to it
};

std::string encode_node(const Node& n) {
  std::string out;
  base::put_u64(&out, n.live);
  base::put_u64(&out, n.total);
  put_id(&out, n.last);
  return out;
}

bool decode_node(const StreamId& first, std::string_view bytes, Node* n) {
  base::Reader r(bytes);
  n->first = first;
  return r.u64(&n->live) && r.u64(&n->total) && read_id(r, &n->last) && r.done();
}

// An entry: its ID and its fields and values in turn.
struct Item {
  StreamId id;
  std::vector<std::string> fields;
};

std::string encode_entry(const StreamId& node, const Args& a, size_t from) {
  std::string out;
  put_id(&out, node);
  base::put_u32(&out, static_cast<uint32_t>(a.size() - from));
  for (size_t i = from; i < a.size(); ++i)
    base::put_bytes(&out, a[i]);
  return out;
}

bool decode_entry(std::string_view bytes, StreamId* node, std::vector<std::string>* fields) {
  base::Reader r(bytes);
  uint32_t n = 0;
  if (!read_id(r, node) || !r.u32(&n) || n > r.remaining() / 4) return false;
  fields->resize(n);
  for (std::string& f : *fields)
    if (!r.bytes(&f)) return false;
  return r.done();
}

Reply item_reply(const Item& item) {
  std::vector<Reply> fields;
  fields.reserve(item.fields.size());
  for (const std::string& f : item.fields)
    fields.push_back(Reply::bulk(f));
  return Reply::array({id_reply(item.id), Reply::array(std::move(fields))});
}

Reply items_reply(const std::vector<Item>& items) {
  std::vector<Reply> out;
  out.reserve(items.size());
  for (const Item& item : items)
    out.push_back(item_reply(item));
  return Reply::array(std::move(out));
}

struct Group {
  std::string name;
  StreamId last;              // last-delivered-id
  int64_t entries_read = -1;  // -1: not known
  uint64_t pending = 0;       // entries in its PEL
  uint64_t consumers = 0;
};

std::string encode_group(const Group& g) {
  std::string out;
  put_id(&out, g.last);
  base::put_u64(&out, static_cast<uint64_t>(g.entries_read));
  base::put_u64(&out, g.pending);
  base::put_u64(&out, g.consumers);
  return out;
}

bool decode_group(std::string_view bytes, Group* g) {
  base::Reader r(bytes);
  return read_id(r, &g->last) && r.i64(&g->entries_read) && r.u64(&g->pending) &&
         r.u64(&g->consumers) && r.done();
}

// A pending entry: who it was delivered to last, when, and how many times.
struct Nack {
  std::string consumer;
  int64_t delivered = 0;
  uint64_t count = 0;
};

std::string encode_nack(const Nack& n) {
  std::string out;
  base::put_bytes(&out, n.consumer);
  base::put_u64(&out, static_cast<uint64_t>(n.delivered));
  base::put_u64(&out, n.count);
  return out;
}

bool decode_nack(std::string_view bytes, Nack* n) {
  base::Reader r(bytes);
  return r.bytes(&n->consumer) && r.i64(&n->delivered) && r.u64(&n->count) && r.done();
}

// A name after its length, so that names do not run into what follows them.
std::string sized(std::string_view name) {
  std::string out;
  const auto n = static_cast<uint32_t>(name.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(name);
  return out;
}

std::string entry_sub(const StreamId& id) {
  return "e" + id_bytes(id);
}
std::string node_sub(const StreamId& id) {
  return "n" + id_bytes(id);
}
std::string group_sub(std::string_view group) {
  return "g" + std::string(group);
}
std::string consumers_sub(std::string_view group) {
  return "c" + sized(group);
}
std::string pel_sub(std::string_view group) {
  return "p" + sized(group);
}
std::string consumer_pels_sub(std::string_view group) {
  return "q" + sized(group);
}
std::string consumer_pel_sub(std::string_view group, std::string_view consumer) {
  return consumer_pels_sub(group) + sized(consumer);
}

// ---- a stream ----------------------------------------------------------------------------------

enum class Strategy { kNone, kByMaxLen, kByMinId };

struct TrimArgs {
  Strategy strategy = Strategy::kNone;
  bool approx = false;  // only whole nodes
  int64_t limit = 0;    // at most this many entries go (0: no limit)
  int64_t maxlen = 0;
  StreamId minid;
};

// One command's view of a stream: its record and metadata, and the element records behind them.
// Changes to elements go straight to the store; save() writes the record and metadata.
class Stream {
 public:
  Stream(Keys& k, std::string key, Record rec, Meta meta)
      : k_(&k), key_(std::move(key)), rec_(rec), meta_(meta) {}

  const Meta& meta() const { return meta_; }
  Meta& meta() { return meta_; }
  uint64_t length() const { return rec_.size; }
  int64_t now() const { return k_->now(); }

  // Writes the metadata if anything changed, and the key's record if entries came or went (or
  // the stream is new). As Redis, only that touches the key for WATCH: group changes, XSETID,
  // XREADGROUP and kin do not.
  void save() {
    if (dirty_ || entries_changed_) k_->store().put_element(ek("m"), encode_meta(meta_));
    if (entries_changed_) k_->save(key_, rec_);
    dirty_ = entries_changed_ = false;
  }
  void touch() { dirty_ = true; }
  void touch_entries() { entries_changed_ = true; }

  // ---- entries

  bool get(const StreamId& id, Item* item) {
    std::string bytes;
    StreamId node;
    if (!k_->store().get_element(ek(entry_sub(id)), &bytes)) return false;
    item->id = id;
    return decode_entry(bytes, &node, &item->fields);
  }
  // Calls fn(sub, value) on the element records whose keys start with `prefix` and then go on
  // with `sub` (from `from` on), in key order, while it answers true.
  template <class Fn>
  void each_under(const std::string& prefix, const std::string& from, Fn fn) {
    const std::string start = ek(prefix);
    std::string at = start + from;
    Pairs page;
    for (size_t want = kFirstPage;; want = std::min(2 * want, kPage)) {
      k_->store().scan_elements(start, at, want, &page);
      for (const auto& [key, value] : page)
        if (!fn(std::string_view(key).substr(start.size()), value)) return;
      if (page.size() < want) return;
      at = page.back().first + '\0';
    }
  }

  // Calls fn(Item&) on each entry from `from` to `to` in ID order while it answers true.
  template <class Fn>
  void each_entry(const StreamId& from, const StreamId& to, Fn fn) {
    each_under("e", id_bytes(from), [&](std::string_view sub, const std::string& value) {
      if (sub.size() != 16) return true;
      Item item;
      item.id = load_id(sub.data());
      StreamId node;
      if (item.id > to) return false;
      return !decode_entry(value, &node, &item.fields) || fn(item);
    });
  }

  // Up to `count` entries (0: all) from `start` to `end`, or from `end` down to `start`.
  std::vector<Item> range(const StreamId& start, const StreamId& end, size_t count, bool rev) {
    std::vector<Item> out;
    if (start > end) return out;
    auto room = [&] { return count == 0 || out.size() < count; };
    if (!rev) {
      each_entry(start, end, [&](Item& item) {
        out.push_back(std::move(item));
        return room();
      });
      return out;
    }
    // Backwards: the span of each node from the last, each span read forwards (entries of a
    // node lie between its first ID and the next node's). The tail node first, without reading
    // the others' records: often it holds all that is asked for.
    StreamId hi = end;
    // Reads [max(lo, start), hi] backwards into `out`; false when that reached `start`.
    auto span_back = [&](const StreamId& lo) {
      const StreamId from = std::max(lo, start);
      std::vector<Item> span;
      each_entry(from, hi, [&](Item& item) {
        span.push_back(std::move(item));
        return true;
      });
      for (auto it = span.rbegin(); it != span.rend() && room(); ++it)
        out.push_back(std::move(*it));
      hi = from;
      return from != start && decr_id(&hi);
    };
    if (meta_.has_tail && meta_.tail <= hi && (!span_back(meta_.tail) || !room())) return out;
    std::vector<StreamId> bounds = {kMinId};
    for (const Node& n : nodes())
      if (n.first != kMinId) bounds.push_back(n.first);
    for (auto b = bounds.rbegin(); b != bounds.rend() && room(); ++b) {
      if (*b > hi) continue;
      if (!span_back(*b)) break;
    }
    return out;
  }

  // Whether an entry's ID is greater than `id`.
  bool any_after(StreamId id) {
    if (!incr_id(&id)) return false;
    bool found = false;
    each_entry(id, kMaxId, [&](Item&) {
      found = true;
      return false;
    });
    return found;
  }

  std::optional<Item> first_entry() {
    std::vector<Item> got = range(kMinId, kMaxId, 1, false);
    if (got.empty()) return std::nullopt;
    return std::move(got[0]);
  }
  std::optional<Item> last_entry() {
    std::vector<Item> got = range(kMinId, kMaxId, 1, true);
    if (got.empty()) return std::nullopt;
    return std::move(got[0]);
  }

  // Appends an entry of the fields and values a[from...], as XADD: into the tail node, or a new
  // one when that is full.
  void append(const StreamId& id, const Args& a, size_t from) {
    Node node;
    if (!meta_.has_tail || !get_node(meta_.tail, &node) || node.total >= kNodeMaxEntries) {
      node = Node{id, 0, 0, id};
      meta_.has_tail = true;
      meta_.tail = id;
      ++meta_.nodes;
    }
    ++node.live;
    ++node.total;
    node.last = std::max(node.last, id);
    put_node(node);
    k_->store().put_element(ek(entry_sub(id)), encode_entry(node.first, a, from));
    ++rec_.size;
    ++meta_.entries_added;
    meta_.last = id;
    if (rec_.size == 1) meta_.first = id;
    touch_entries();
  }

  // Deletes one entry (XDEL, exact trimming); false if there is none. Its node goes with its
  // last entry. The recorded first ID is the caller's to fix.
  bool remove(const StreamId& id) {
    std::string bytes;
    StreamId node_id;
    std::vector<std::string> fields;
    const std::string key = ek(entry_sub(id));
    if (!k_->store().get_element(key, &bytes)) return false;
    k_->store().del_element(key);
    --rec_.size;
    touch_entries();
    Node node;
    if (decode_entry(bytes, &node_id, &fields) && get_node(node_id, &node)) {
      if (node.live <= 1) {
        drop_node(node);
      } else {
        --node.live;
        put_node(node);
      }
    }
    return true;
  }

  // After entries went: the first entry's ID, as Redis records it.
  void refresh_first() {
    if (length() == 0) {
      meta_.first = kMinId;
    } else if (std::optional<Item> f = first_entry()) {
      meta_.first = f->id;
    }
    touch();
  }

  // Redis's streamTrim: the entries that go by MAXLEN or MINID, whole nodes from the first and
  // then (unless approximate) the first entries of the next node. Answers how many went.
  int64_t trim(const TrimArgs& t) {
    if (t.strategy == Strategy::kNone) return 0;
    const bool by_length = t.strategy == Strategy::kByMaxLen;
    const auto maxlen = static_cast<uint64_t>(t.maxlen);
    int64_t deleted = 0;
    for (;;) {
      if (by_length && length() <= maxlen) break;
      std::vector<Node> first = nodes(1);
      if (first.empty()) break;
      Node& node = first[0];
      const auto entries = static_cast<int64_t>(node.live);
      if (t.limit != 0 && deleted + entries > t.limit) break;
      const bool whole = by_length ? length() - node.live >= maxlen : node.last < t.minid;
      if (whole) {
        drop_node_entries(node);
        deleted += entries;
        continue;
      }
      if (t.approx) break;
      // Within the node: its first entries, until the stream is short enough (or the IDs
      // reach MINID).
      std::vector<StreamId> going;
      uint64_t left = length();
      each_entry(node.first, kMaxId, [&](Item& item) {
        if (by_length ? left <= maxlen : item.id >= t.minid) return false;
        going.push_back(item.id);
        --left;
        return going.size() < node.live;
      });
      for (const StreamId& id : going)
        remove(id);
      deleted += static_cast<int64_t>(going.size());
      break;
    }
    if (deleted > 0) refresh_first();
    return deleted;
  }

  // Every node (or the first `limit`), in ID order.
  std::vector<Node> nodes(size_t limit = 0) {
    std::vector<Node> out;
    each_under("n", "", [&](std::string_view sub, const std::string& value) {
      Node n;
      if (sub.size() == 16 && decode_node(load_id(sub.data()), value, &n)) out.push_back(n);
      return limit == 0 || out.size() < limit;
    });
    return out;
  }

  // ---- consumer groups

  bool find_group(const std::string& name, Group* g) {
    std::string bytes;
    g->name = name;
    return k_->store().get_element(ek(group_sub(name)), &bytes) && decode_group(bytes, g);
  }
  void put_group(const Group& g) {
    k_->store().put_element(ek(group_sub(g.name)), encode_group(g));
    touch();
  }
  void create_group(const Group& g) {
    put_group(g);
    ++meta_.groups;
  }
  // Removes a group with its consumers and pending entries.
  void destroy_group(const Group& g) {
    for (const std::string& prefix :
         {consumers_sub(g.name), pel_sub(g.name), consumer_pels_sub(g.name)}) {
      each_under(prefix, "", [&](std::string_view sub, const std::string&) {
        k_->store().del_element(ek(prefix + std::string(sub)));
        return true;
      });
    }
    k_->store().del_element(ek(group_sub(g.name)));
    --meta_.groups;
    touch();
  }
  std::vector<Group> groups() {
    std::vector<Group> out;
    each_under("g", "", [&](std::string_view sub, const std::string& value) {
      Group g;
      g.name = sub;
      if (decode_group(value, &g)) out.push_back(std::move(g));
      return true;
    });
    return out;
  }

  // A consumer's seen time, if it exists.
  std::optional<int64_t> consumer_seen(const Group& g, const std::string& name) {
    std::string bytes;
    if (!k_->store().get_element(ek(consumers_sub(g.name) + name), &bytes) || bytes.size() != 8)
      return std::nullopt;
    return static_cast<int64_t>(base::load_u64(bytes.data()));
  }
  // The consumer `name`, made if it is not there; seen now when `refresh` (or made). True if
  // it was made.
  bool touch_consumer(Group& g, const std::string& name, bool refresh = true) {
    const bool exists = consumer_seen(g, name).has_value();
    if (exists && !refresh) return false;
    std::string seen;
    base::put_u64(&seen, static_cast<uint64_t>(now()));
    k_->store().put_element(ek(consumers_sub(g.name) + name), seen);
    if (!exists) ++g.consumers;
    touch();
    return !exists;
  }
  // Removes a consumer and its pending entries; answers how many it had.
  int64_t delete_consumer(Group& g, const std::string& name) {
    std::vector<StreamId> ids;
    each_pending(g, &name, kMinId, [&](const StreamId& id, const Nack&) {
      ids.push_back(id);
      return true;
    });
    for (const StreamId& id : ids) {
      k_->store().del_element(ek(pel_sub(g.name) + id_bytes(id)));
      k_->store().del_element(ek(consumer_pel_sub(g.name, name) + id_bytes(id)));
    }
    g.pending -= std::min<uint64_t>(g.pending, ids.size());
    k_->store().del_element(ek(consumers_sub(g.name) + name));
    --g.consumers;
    touch();
    return static_cast<int64_t>(ids.size());
  }
  // The group's consumers in name order, with their seen times.
  std::vector<std::pair<std::string, int64_t>> consumers(const Group& g) {
    std::vector<std::pair<std::string, int64_t>> out;
    each_under(consumers_sub(g.name), "", [&](std::string_view sub, const std::string& value) {
      if (value.size() == 8)
        out.emplace_back(sub, static_cast<int64_t>(base::load_u64(value.data())));
      return true;
    });
    return out;
  }

  std::optional<Nack> find_nack(const Group& g, const StreamId& id) {
    std::string bytes;
    Nack n;
    if (!k_->store().get_element(ek(pel_sub(g.name) + id_bytes(id)), &bytes) ||
        !decode_nack(bytes, &n))
      return std::nullopt;
    return n;
  }
  // Writes a pending entry that was `old` (none: new to the PEL).
  void set_nack(Group& g, const StreamId& id, const std::optional<Nack>& old, const Nack& n) {
    const std::string idb = id_bytes(id);
    if (!old) ++g.pending;
    if (!old || old->consumer != n.consumer) {
      if (old) k_->store().del_element(ek(consumer_pel_sub(g.name, old->consumer) + idb));
      k_->store().put_element(ek(consumer_pel_sub(g.name, n.consumer) + idb), "");
    }
    k_->store().put_element(ek(pel_sub(g.name) + idb), encode_nack(n));
    touch();
  }
  void drop_nack(Group& g, const StreamId& id, const Nack& old) {
    const std::string idb = id_bytes(id);
    k_->store().del_element(ek(pel_sub(g.name) + idb));
    k_->store().del_element(ek(consumer_pel_sub(g.name, old.consumer) + idb));
    if (g.pending > 0) --g.pending;
    touch();
  }

  // Calls fn(id, nack) on the group's pending entries (or the consumer's) from `from`, in ID
  // order, while it answers true.
  template <class Fn>
  void each_pending(const Group& g, const std::string* consumer, const StreamId& from, Fn fn) {
    const std::string prefix =
        consumer != nullptr ? consumer_pel_sub(g.name, *consumer) : pel_sub(g.name);
    each_under(prefix, id_bytes(from), [&](std::string_view sub, const std::string& value) {
      if (sub.size() != 16) return true;
      const StreamId id = load_id(sub.data());
      std::optional<Nack> n;
      if (consumer != nullptr) {
        n = find_nack(g, id);
      } else if (Nack decoded; decode_nack(value, &decoded)) {
        n = std::move(decoded);
      }
      return !n || fn(id, *n);
    });
  }
  uint64_t consumer_pending(const Group& g, const std::string& consumer) {
    uint64_t n = 0;
    each_under(consumer_pel_sub(g.name, consumer), "", [&](std::string_view, const std::string&) {
      ++n;
      return true;
    });
    return n;
  }

  // ---- read counters (Redis's streamEstimateDistanceFromFirstEverEntry and kin)

  // Whether an entry from `start` on may have been deleted.
  bool tombstones_from(const StreamId& start) const {
    if (length() == 0 || meta_.max_deleted.zero()) return false;
    if (meta_.first > meta_.max_deleted) return false;
    return start <= meta_.max_deleted;
  }
  // How many entries the stream had added up to `id`, or -1 when that cannot be known.
  int64_t read_counter(const StreamId& id) const {
    const auto added = static_cast<int64_t>(meta_.entries_added);
    const auto len = static_cast<int64_t>(length());
    if (added == 0) return 0;
    if (len == 0 && id <= meta_.last) return added;
    if (id == meta_.last) return added;
    if (id > meta_.last) return -1;
    if (meta_.max_deleted.zero() || meta_.max_deleted < meta_.first) {
      if (id < meta_.first) return added - len;
      if (id == meta_.first) return added - len + 1;
    }
    return -1;
  }
  // A group's lag: the entries it has not been given; none when that cannot be known.
  std::optional<int64_t> lag(const Group& g) const {
    const auto added = static_cast<int64_t>(meta_.entries_added);
    if (added == 0) return 0;
    if (g.entries_read != -1 && !tombstones_from(g.last)) return added - g.entries_read;
    const int64_t read = read_counter(g.last);
    if (read == -1) return std::nullopt;
    return added - read;
  }
  // Moves a group past an entry it delivers.
  void advance(Group& g, const StreamId& id) const {
    if (id <= g.last) return;
    if (g.entries_read != -1 && !tombstones_from(id)) {
      ++g.entries_read;
    } else if (meta_.entries_added != 0) {
      g.entries_read = read_counter(id);
    }
    g.last = id;
  }

 private:
  std::string ek(std::string_view sub) const { return element_key(rec_.version, sub); }

  bool get_node(const StreamId& first, Node* n) {
    std::string bytes;
    return k_->store().get_element(ek(node_sub(first)), &bytes) && decode_node(first, bytes, n);
  }
  void put_node(const Node& n) { k_->store().put_element(ek(node_sub(n.first)), encode_node(n)); }
  void drop_node(const Node& n) {
    k_->store().del_element(ek(node_sub(n.first)));
    if (meta_.nodes > 0) --meta_.nodes;
    if (meta_.has_tail && meta_.tail == n.first) meta_.has_tail = false;
    touch();
  }
  // Removes a node with its entries.
  void drop_node_entries(const Node& n) {
    std::vector<StreamId> going;
    if (n.live > 0) {
      each_entry(n.first, kMaxId, [&](Item& item) {
        going.push_back(item.id);
        return going.size() < n.live;
      });
    }
    for (const StreamId& id : going)
      k_->store().del_element(ek(entry_sub(id)));
    rec_.size -= std::min<uint64_t>(rec_.size, going.size());
    touch_entries();
    drop_node(n);
  }

  Keys* k_;
  std::string key_;
  Record rec_;
  Meta meta_;
  bool dirty_ = false;            // the metadata or a group changed
  bool entries_changed_ = false;  // entries came or went, or the stream is new
};

// The stream at a key: none when there is none (a new empty one with `create`), or the error.
struct StreamAt {
  std::optional<Stream> stream;
  std::optional<Reply> error;
};

StreamAt stream_at(Keys& k, const std::string& key, bool create = false) {
  StreamAt out;
  TypedAt t = typed_at(k, key, kStream, create);
  if (t.error) {
    out.error = std::move(t.error);
    return out;
  }
  Meta meta;
  if (t.live) {
    std::string bytes;
    if (!k.store().get_element(element_key(t.rec.version, "m"), &bytes) ||
        !decode_meta(bytes, &meta)) {
      out.error = damaged(key);
      return out;
    }
  } else if (!create) {
    return out;
  }
  out.stream.emplace(k, key, t.rec, meta);
  if (!t.live) out.stream->touch_entries();
  return out;
}

Reply no_key_or_group(const std::string& key, const std::string& group) {
  return Reply::error("NOGROUP No such key '" + key + "' or consumer group '" + group + "'");
}
Reply no_group_for_key(const std::string& group, const std::string& key) {
  return Reply::error("NOGROUP No such consumer group '" + group + "' for key name '" + key + "'");
}

std::string upper(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

struct Subcommand {
  const char* name;
  int arity;
};

// Redis's container commands (XGROUP, XINFO) check the subcommand and its arity first.
std::optional<Reply> check_subcommand(const Args& a, const char* container,
                                      std::initializer_list<Subcommand> subs) {
  for (const Subcommand& s : subs) {
    if (!equals_ci(a[1], s.name)) continue;
    const bool ok = s.arity >= 0 ? a.size() == static_cast<size_t>(s.arity)
                                 : a.size() >= static_cast<size_t>(-s.arity);
    if (ok) return std::nullopt;
    return wrong_args(std::string(container) + "|" + s.name);
  }
  std::string name = a[1].substr(0, 128);
  std::replace(name.begin(), name.end(), '\r', ' ');
  std::replace(name.begin(), name.end(), '\n', ' ');
  return Reply::error("ERR unknown subcommand '" + name + "'. Try " + upper(container) + " HELP.");
}

Reply subcommand_syntax_error(const Args& a) {
  return Reply::error("ERR unknown subcommand or wrong number of arguments for '" +
                      a[1].substr(0, 128) + "'. Try " + upper(a[0]) + " HELP.");
}

Reply help_reply(const std::string& command, std::initializer_list<const char*> lines) {
  std::vector<Reply> out;
  out.push_back(
      Reply::status(upper(command) + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
  for (const char* line : lines)
    out.push_back(Reply::status(line));
  out.push_back(Reply::status("HELP"));
  out.push_back(Reply::status("    Prints this help."));
  return Reply::array(std::move(out));
}

// ---- XADD, XTRIM -------------------------------------------------------------------------------

struct AddArgs {
  TrimArgs trim;
  bool nomkstream = false;
  bool id_given = false;
  bool seq_given = true;
  StreamId id;
  size_t id_at = 0;  // XADD: where the ID is
};

// XADD's and XTRIM's options from a[2] (Redis's streamParseAddOrTrimArgsOrReply); XADD's stop
// at its ID. None, or the error to answer.
std::optional<Reply> parse_add_or_trim(const Args& a, bool xadd, AddArgs* p) {
  TrimArgs& t = p->trim;
  bool limit_given = false;
  size_t i = 2;
  for (; i < a.size(); ++i) {
    const size_t more = a.size() - 1 - i;
    const std::string& o = a[i];
    if (xadd && o == "*") break;
    const bool maxlen = equals_ci(o, "maxlen");
    if ((maxlen || equals_ci(o, "minid")) && more > 0) {
      if (t.strategy != Strategy::kNone)
        return Reply::error(
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
      t.approx = false;
      if (more >= 2 && a[i + 1] == "~") {
        t.approx = true;
        ++i;
      } else if (more >= 2 && a[i + 1] == "=") {
        ++i;
      }
      if (maxlen) {
        if (!parse_int64(a[i + 1], &t.maxlen)) return Reply::error(errors::kNotInteger);
        if (t.maxlen < 0) return Reply::error("ERR The MAXLEN argument must be >= 0.");
      } else if (!parse_id(a[i + 1], 0, true, &t.minid)) {
        return invalid_id();
      }
      ++i;
      t.strategy = maxlen ? Strategy::kByMaxLen : Strategy::kByMinId;
    } else if (equals_ci(o, "limit") && more > 0) {
      if (!parse_int64(a[i + 1], &t.limit)) return Reply::error(errors::kNotInteger);
      if (t.limit < 0) return Reply::error("ERR The LIMIT argument must be >= 0.");
      limit_given = true;
      ++i;
    } else if (xadd && equals_ci(o, "nomkstream")) {
      p->nomkstream = true;
    } else if (xadd) {
      if (!parse_id(o, 0, true, &p->id, &p->seq_given)) return invalid_id();
      p->id_given = true;
      break;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  p->id_at = i;
  if (t.limit != 0 && t.strategy == Strategy::kNone)
    return Reply::error(
        "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
  if (!xadd && t.strategy == Strategy::kNone)
    return Reply::error("ERR syntax error, XTRIM must be called with a trimming strategy");
  if (limit_given) {
    if (!t.approx)
      return Reply::error("ERR syntax error, LIMIT cannot be used without the special ~ option");
  } else {
    t.limit = t.approx ? kDefaultTrimLimit : 0;
  }
  return std::nullopt;
}

Reply id_not_greater() {
  return Reply::error(
      "ERR The ID specified in XADD is equal or smaller than the target stream top item");
}

// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...
Reply cmd_xadd(Keys& k, const Args& a) {
  AddArgs p;
  if (auto e = parse_add_or_trim(a, true, &p)) return *e;
  const size_t fields_at = p.id_at + 1;
  if (fields_at >= a.size() || (a.size() - fields_at) % 2 != 0) return wrong_args("xadd");
  if (p.id_given && p.seq_given && p.id.zero())
    return Reply::error("ERR The ID specified in XADD must be greater than 0-0");
  StreamAt at = stream_at(k, a[1], !p.nomkstream);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::null();
  Stream& s = *at.stream;
  const StreamId last = s.meta().last;
  if (last == kMaxId)
    return Reply::error(
        "ERR The stream has exhausted the last possible ID, unable to add more items");
  StreamId id;
  if (!p.id_given) {
    const auto now = static_cast<uint64_t>(std::max<int64_t>(k.now(), 0));
    id = last;
    if (now > last.ms) {
      id = StreamId{now, 0};
    } else if (!incr_id(&id)) {
      return id_not_greater();
    }
  } else if (!p.seq_given && p.id.ms == last.ms) {
    if (last.seq == kU64Max) return id_not_greater();
    id = StreamId{last.ms, last.seq + 1};
  } else {
    id = p.id;
  }
  if (id <= last) return id_not_greater();
  size_t bytes = 0;
  for (size_t i = fields_at; i < a.size(); ++i)
    bytes += a[i].size();
  if (bytes > kMaxEntryBytes) return Reply::error("ERR Elements are too large to be stored");
  s.append(id, a, fields_at);
  s.trim(p.trim);
  s.save();
  return id_reply(id);
}

// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
Reply cmd_xtrim(Keys& k, const Args& a) {
  AddArgs p;
  if (auto e = parse_add_or_trim(a, false, &p)) return *e;
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::integer_of(0);
  const int64_t deleted = at.stream->trim(p.trim);
  at.stream->save();
  return Reply::integer_of(deleted);
}

Reply cmd_xlen(Keys& k, const Args& a) {
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  return Reply::integer_of(at.stream ? static_cast<int64_t>(at.stream->length()) : 0);
}

// XDEL key id [id ...]
Reply cmd_xdel(Keys& k, const Args& a) {
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::integer_of(0);
  std::vector<StreamId> ids(a.size() - 2);
  for (size_t i = 2; i < a.size(); ++i)
    if (!parse_id(a[i], 0, true, &ids[i - 2])) return invalid_id();
  Stream& s = *at.stream;
  int64_t deleted = 0;
  bool first_went = false;
  for (const StreamId& id : ids) {
    if (!s.remove(id)) continue;
    ++deleted;
    if (id == s.meta().first) first_went = true;
    if (id > s.meta().max_deleted) s.meta().max_deleted = id;
  }
  if (deleted > 0 && (first_went || s.length() == 0)) s.refresh_first();
  s.save();
  return Reply::integer_of(deleted);
}

// XRANGE key start end [COUNT n], XREVRANGE key end start [COUNT n]
Reply range_command(Keys& k, const Args& a, bool rev) {
  StreamId start, end;
  if (auto e = parse_range_end(rev ? a[3] : a[2], true, &start)) return *e;
  if (auto e = parse_range_end(rev ? a[2] : a[3], false, &end)) return *e;
  int64_t count = -1;
  for (size_t j = 4; j < a.size(); ++j) {
    if (equals_ci(a[j], "count") && j + 1 < a.size()) {
      if (!parse_int64(a[j + 1], &count)) return Reply::error(errors::kNotInteger);
      if (count < 0) count = 0;
      ++j;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::array();
  if (count == 0) return Reply::null_array();
  return items_reply(at.stream->range(start, end, count < 0 ? 0 : static_cast<size_t>(count), rev));
}
Reply cmd_xrange(Keys& k, const Args& a) {
  return range_command(k, a, false);
}
Reply cmd_xrevrange(Keys& k, const Args& a) {
  return range_command(k, a, true);
}

// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
Reply cmd_xsetid(Keys& k, const Args& a) {
  StreamId id, max_deleted;
  int64_t entries_added = -1;
  if (!parse_id(a[2], 0, true, &id)) return invalid_id();
  for (size_t i = 3; i < a.size(); i += 2) {
    const bool more = i + 1 < a.size();
    if (equals_ci(a[i], "entriesadded") && more) {
      if (!parse_int64(a[i + 1], &entries_added)) return Reply::error(errors::kNotInteger);
      if (entries_added < 0) return Reply::error("ERR entries_added must be positive");
    } else if (equals_ci(a[i], "maxdeletedid") && more) {
      if (!parse_id(a[i + 1], 0, true, &max_deleted)) return invalid_id();
      if (id < max_deleted)
        return Reply::error(
            "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::error(errors::kNoSuchKey);
  Stream& s = *at.stream;
  if (s.length() > 0) {
    if (s.any_after(id))
      return Reply::error(
          "ERR The ID specified in XSETID is smaller than the target stream top item");
    if (entries_added != -1 && s.length() > static_cast<uint64_t>(entries_added))
      return Reply::error(
          "ERR The entries_added specified in XSETID is smaller than the target stream length");
  }
  s.meta().last = id;
  if (entries_added != -1) s.meta().entries_added = static_cast<uint64_t>(entries_added);
  if (!max_deleted.zero()) s.meta().max_deleted = max_deleted;
  s.touch();
  s.save();
  return Reply::ok();
}

// ---- XREAD, XREADGROUP -------------------------------------------------------------------------

struct ReadArgs {
  std::string group, consumer;  // XREADGROUP
  bool noack = false;
  int64_t count = 0;   // 0: all
  size_t keys_at = 0;  // the first key
  size_t streams = 0;  // how many keys (and IDs)
};

// XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ..., and XREADGROUP's GROUP and NOACK too.
std::optional<Reply> parse_read(const Args& a, bool xreadgroup, ReadArgs* r) {
  bool group_given = false;
  for (size_t i = 1; i < a.size(); ++i) {
    const size_t more = a.size() - 1 - i;
    const std::string& o = a[i];
    if (equals_ci(o, "block") && more > 0) {
      int64_t timeout = 0;
      if (!parse_int64(a[++i], &timeout))
        return Reply::error("ERR timeout is not an integer or out of range");
      if (timeout < 0) return Reply::error("ERR timeout is negative");
    } else if (equals_ci(o, "count") && more > 0) {
      if (!parse_int64(a[++i], &r->count)) return Reply::error(errors::kNotInteger);
      if (r->count < 0) r->count = 0;
    } else if (equals_ci(o, "streams") && more > 0) {
      r->keys_at = i + 1;
      if (more % 2 != 0)
        return Reply::error(
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
            "specified.");
      r->streams = more / 2;
      break;
    } else if (equals_ci(o, "group") && more >= 2) {
      if (!xreadgroup)
        return Reply::error(
            "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
      r->group = a[i + 1];
      r->consumer = a[i + 2];
      group_given = true;
      i += 2;
    } else if (equals_ci(o, "noack")) {
      if (!xreadgroup)
        return Reply::error(
            "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
      r->noack = true;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  if (r->keys_at == 0) return Reply::error(errors::kSyntax);
  if (xreadgroup && !group_given) return Reply::error("ERR Missing GROUP option for XREADGROUP");
  return std::nullopt;
}

// The ID after which each stream is read: for XREADGROUP, kMaxId stands for ">" (new entries),
// as in Redis. None, or the error to answer.
std::optional<Reply> read_ids(Keys& k, const Args& a, const ReadArgs& r, bool xreadgroup,
                              std::vector<StreamId>* ids) {
  ids->assign(r.streams, kMinId);
  for (size_t i = 0; i < r.streams; ++i) {
    const std::string& key = a[r.keys_at + i];
    const std::string& arg = a[r.keys_at + r.streams + i];
    StreamAt at = stream_at(k, key);
    if (at.error) return at.error;
    if (xreadgroup) {
      Group g;
      if (!at.stream || !at.stream->find_group(r.group, &g))
        return Reply::error("NOGROUP No such key '" + key + "' or consumer group '" + r.group +
                            "' in XREADGROUP with GROUP option");
    }
    if (arg == "$") {
      if (xreadgroup)
        return Reply::error(
            "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
            "history of this consumer by specifying a proper ID, or use the > ID to get new "
            "messages. The $ ID would just return an empty result set.");
      if (at.stream) (*ids)[i] = at.stream->meta().last;
    } else if (arg == ">") {
      if (!xreadgroup)
        return Reply::error(
            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
            "<consumer> option.");
      (*ids)[i] = kMaxId;
    } else if (!parse_id(arg, 0, true, &(*ids)[i])) {
      return invalid_id();
    }
  }
  return std::nullopt;
}

// XREADGROUP over one stream: new entries after the group's last delivered one (`after` is
// kMaxId), or the consumer's pending entries after `after`. None when there is nothing new.
std::optional<Reply> read_group(Stream& s, const ReadArgs& r, const StreamId& after) {
  Group g;
  if (!s.find_group(r.group, &g)) return std::nullopt;
  const auto count = static_cast<size_t>(r.count);
  std::vector<Reply> out;
  if (after != kMaxId) {
    // The consumer's history: its pending entries (an entry deleted since shows as nil).
    s.touch_consumer(g, r.consumer);
    StreamId from = after;
    incr_id(&from);
    std::vector<std::pair<StreamId, Nack>> pending;
    s.each_pending(g, &r.consumer, from, [&](const StreamId& id, const Nack& n) {
      pending.emplace_back(id, n);
      return count == 0 || pending.size() < count;
    });
    for (auto& [id, n] : pending) {
      Item item;
      if (s.get(id, &item)) {
        out.push_back(item_reply(item));
        Nack updated = n;
        updated.delivered = s.now();
        ++updated.count;
        s.set_nack(g, id, n, updated);
      } else {
        out.push_back(Reply::array({id_reply(id), Reply::null_array()}));
      }
    }
  } else {
    if (!s.any_after(g.last)) return std::nullopt;
    s.touch_consumer(g, r.consumer);
    StreamId from = g.last;
    incr_id(&from);
    for (const Item& item : s.range(from, kMaxId, count, false)) {
      s.advance(g, item.id);
      if (!r.noack) s.set_nack(g, item.id, s.find_nack(g, item.id), Nack{r.consumer, s.now(), 1});
      out.push_back(item_reply(item));
    }
  }
  s.put_group(g);
  s.save();
  return Reply::array(std::move(out));
}

Reply read_command(Keys& k, const Args& a, bool xreadgroup) {
  ReadArgs r;
  if (auto e = parse_read(a, xreadgroup, &r)) return *e;
  std::vector<StreamId> ids;
  if (auto e = read_ids(k, a, r, xreadgroup, &ids)) return *e;
  std::vector<Reply> out;
  for (size_t i = 0; i < r.streams; ++i) {
    const std::string& key = a[r.keys_at + i];
    // Loaded again: an earlier key of this command may be the same stream.
    StreamAt at = stream_at(k, key);
    if (!at.stream) continue;
    std::optional<Reply> entries;
    if (xreadgroup) {
      entries = read_group(*at.stream, r, ids[i]);
    } else if (at.stream->any_after(ids[i])) {
      StreamId from = ids[i];
      incr_id(&from);
      entries = items_reply(at.stream->range(from, kMaxId, static_cast<size_t>(r.count), false));
    }
    if (entries) out.push_back(Reply::array({Reply::bulk(key), std::move(*entries)}));
  }
  if (out.empty()) return Reply::null_array();
  return Reply::array(std::move(out));
}

Reply cmd_xread(Keys& k, const Args& a) {
  return read_command(k, a, false);
}
Reply cmd_xreadgroup(Keys& k, const Args& a) {
  return read_command(k, a, true);
}

// \x01xlastids key [key ...]: each key's last-generated-id ("0-0" when it holds no stream), for
// the connection to put in place of XREAD's "$" before it waits.
Reply cmd_xlastids(Keys& k, const Args& a) {
  std::vector<Reply> out;
  for (size_t i = 1; i < a.size(); ++i) {
    StreamAt at = stream_at(k, a[i]);
    out.push_back(id_reply(at.stream ? at.stream->meta().last : kMinId));
  }
  return Reply::array(std::move(out));
}

// \x01xready <XREAD or XREADGROUP argv>: 1 if running it now would answer something other than
// a null array (entries, or an error such as a group that went), else 0. Writes nothing.
Reply cmd_xready(Keys& k, const Args& a) {
  Args sub(a.begin() + 1, a.end());
  const bool xreadgroup = equals_ci(sub[0], "xreadgroup");
  if (!xreadgroup && !equals_ci(sub[0], "xread"))
    return Reply::error("ERR \\x01xready takes an XREAD or XREADGROUP command");
  const Reply ready = Reply::integer_of(1);
  if (sub.size() < (xreadgroup ? 7u : 4u)) return ready;
  ReadArgs r;
  if (parse_read(sub, xreadgroup, &r)) return ready;
  for (size_t i = 0; i < r.streams; ++i) {
    const std::string& arg = sub[r.keys_at + r.streams + i];
    StreamAt at = stream_at(k, sub[r.keys_at + i]);
    StreamId after;
    if (xreadgroup) {
      Group g;
      if (!at.stream || !at.stream->find_group(r.group, &g) || arg != ">") return ready;
      after = g.last;
    } else {
      if (arg == "$") continue;
      if (!parse_id(arg, 0, true, &after)) return ready;
      // Another type, or no key: XREAD waits on (as Redis's blocked XREAD does).
      if (!at.stream) continue;
    }
    if (at.stream->any_after(after)) return ready;
  }
  return Reply::integer_of(0);
}

// ---- XGROUP ------------------------------------------------------------------------------------

// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n] | SETID key group id|$ [ENTRIESREAD n]
//      | DESTROY key group | CREATECONSUMER key group consumer | DELCONSUMER key group consumer
//      | HELP
Reply cmd_xgroup(Keys& k, const Args& a) {
  if (auto e = check_subcommand(a, "xgroup",
                                {{"create", -5},
                                 {"setid", -5},
                                 {"destroy", 4},
                                 {"createconsumer", 5},
                                 {"delconsumer", 5},
                                 {"help", 2}}))
    return *e;
  const std::string& opt = a[1];
  if (equals_ci(opt, "help")) {
    return help_reply(a[0], {
                                "CREATE <key> <groupname> <id|$> [option]",
                                "    Create a new consumer group. Options are:",
                                "    * MKSTREAM",
                                "      Create the empty stream if it does not exist.",
                                "    * ENTRIESREAD entries_read",
                                "      Set the group's entries_read counter (internal use).",
                                "CREATECONSUMER <key> <groupname> <consumer>",
                                "    Create a new consumer in the specified group.",
                                "DELCONSUMER <key> <groupname> <consumer>",
                                "    Remove the specified consumer.",
                                "DESTROY <key> <groupname>",
                                "    Remove the specified group.",
                                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                                "    Set the current group ID and entries_read counter.",
                            });
  }
  const bool create = equals_ci(opt, "create");
  const bool setid = equals_ci(opt, "setid");
  bool mkstream = false;
  int64_t entries_read = -1;
  for (size_t i = 5; i < a.size();) {
    if (create && equals_ci(a[i], "mkstream")) {
      mkstream = true;
      ++i;
    } else if ((create || setid) && equals_ci(a[i], "entriesread") && i + 1 < a.size()) {
      if (!parse_int64(a[i + 1], &entries_read)) return Reply::error(errors::kNotInteger);
      if (entries_read < -1)
        return Reply::error("ERR value for ENTRIESREAD must be positive or -1");
      i += 2;
    } else {
      return subcommand_syntax_error(a);
    }
  }
  const std::string& key = a[2];
  const std::string& name = a[3];
  StreamAt at = stream_at(k, key);
  if (at.error) return *at.error;
  Group g;
  const bool found = at.stream && at.stream->find_group(name, &g);
  if (!mkstream) {
    if (!at.stream)
      return Reply::error(
          "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
          "want to use the MKSTREAM option to create an empty stream automatically.");
    if (!found && !create && !equals_ci(opt, "destroy")) return no_group_for_key(name, key);
  }
  if (create) {
    if (a.size() > 8) return subcommand_syntax_error(a);
    StreamId id;
    if (a[4] == "$") {
      if (at.stream) id = at.stream->meta().last;
    } else if (!parse_id(a[4], 0, true, &id)) {
      return invalid_id();
    }
    if (!at.stream) at = stream_at(k, key, true);
    if (found) return Reply::error("BUSYGROUP Consumer Group name already exists");
    Group made;
    made.name = name;
    made.last = id;
    made.entries_read = entries_read;
    at.stream->create_group(made);
    at.stream->save();
    return Reply::ok();
  }
  Stream& s = *at.stream;
  if (setid) {
    if (a.size() != 5 && a.size() != 7) return subcommand_syntax_error(a);
    StreamId id;
    if (a[4] == "$") {
      id = s.meta().last;
    } else if (!parse_id(a[4], 0, false, &id)) {
      return invalid_id();
    }
    g.last = id;
    g.entries_read = entries_read;
    s.put_group(g);
    s.save();
    return Reply::ok();
  }
  if (equals_ci(opt, "destroy")) {
    if (!found) return Reply::integer_of(0);
    s.destroy_group(g);
    s.save();
    return Reply::integer_of(1);
  }
  if (equals_ci(opt, "createconsumer")) {
    const bool made = s.touch_consumer(g, a[4], false);
    if (made) {
      s.put_group(g);
      s.save();
    }
    return Reply::integer_of(made ? 1 : 0);
  }
  // DELCONSUMER
  if (!s.consumer_seen(g, a[4])) return Reply::integer_of(0);
  const int64_t pending = s.delete_consumer(g, a[4]);
  s.put_group(g);
  s.save();
  return Reply::integer_of(pending);
}

// ---- XACK, XPENDING, XCLAIM, XAUTOCLAIM --------------------------------------------------------

// XACK key group id [id ...]
Reply cmd_xack(Keys& k, const Args& a) {
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  Group g;
  if (!at.stream || !at.stream->find_group(a[2], &g)) return Reply::integer_of(0);
  std::vector<StreamId> ids(a.size() - 3);
  for (size_t i = 3; i < a.size(); ++i)
    if (!parse_id(a[i], 0, true, &ids[i - 3])) return invalid_id();
  Stream& s = *at.stream;
  int64_t acked = 0;
  for (const StreamId& id : ids) {
    if (std::optional<Nack> n = s.find_nack(g, id)) {
      s.drop_nack(g, id, *n);
      ++acked;
    }
  }
  if (acked > 0) {
    s.put_group(g);
    s.save();
  }
  return Reply::integer_of(acked);
}

// XPENDING key group [[IDLE min-idle] start end count [consumer]]
Reply cmd_xpending(Keys& k, const Args& a) {
  const bool summary = a.size() == 3;
  if (!summary && (a.size() < 6 || a.size() > 9)) return Reply::error(errors::kSyntax);
  StreamId start, end;
  int64_t count = 0, min_idle = 0;
  const std::string* consumer = nullptr;
  if (!summary) {
    size_t at = 3;
    if (equals_ci(a[3], "idle")) {
      if (!parse_int64(a[4], &min_idle)) return Reply::error(errors::kNotInteger);
      if (a.size() < 8) return Reply::error(errors::kSyntax);
      at += 2;
    }
    if (!parse_int64(a[at + 2], &count)) return Reply::error(errors::kNotInteger);
    if (count < 0) count = 0;
    if (auto e = parse_range_end(a[at], true, &start)) return *e;
    if (auto e = parse_range_end(a[at + 1], false, &end)) return *e;
    if (at + 3 < a.size()) consumer = &a[at + 3];
  }
  StreamAt st = stream_at(k, a[1]);
  if (st.error) return *st.error;
  Group g;
  if (!st.stream || !st.stream->find_group(a[2], &g)) return no_key_or_group(a[1], a[2]);
  Stream& s = *st.stream;
  if (summary) {
    std::optional<StreamId> first, last;
    std::map<std::string, int64_t> by_consumer;
    int64_t total = 0;
    s.each_pending(g, nullptr, kMinId, [&](const StreamId& id, const Nack& n) {
      if (!first) first = id;
      last = id;
      ++by_consumer[n.consumer];
      ++total;
      return true;
    });
    if (total == 0)
      return Reply::array(
          {Reply::integer_of(0), Reply::null(), Reply::null(), Reply::null_array()});
    std::vector<Reply> consumers;
    for (const auto& [name, n] : by_consumer)
      consumers.push_back(Reply::array({Reply::bulk(name), Reply::bulk(std::to_string(n))}));
    return Reply::array({Reply::integer_of(total), id_reply(*first), id_reply(*last),
                         Reply::array(std::move(consumers))});
  }
  if (consumer != nullptr && !s.consumer_seen(g, *consumer)) return Reply::array();
  std::vector<Reply> out;
  const int64_t now = k.now();
  if (count > 0 && start <= end) {
    s.each_pending(g, consumer, start, [&](const StreamId& id, const Nack& n) {
      if (id > end) return false;
      const int64_t idle = now - n.delivered;
      if (min_idle != 0 && idle < min_idle) return true;
      out.push_back(Reply::array({id_reply(id), Reply::bulk(n.consumer),
                                  Reply::integer_of(std::max<int64_t>(idle, 0)),
                                  Reply::integer_of(static_cast<int64_t>(n.count))}));
      return --count > 0;
    });
  }
  return Reply::array(std::move(out));
}

// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
//        [JUSTID] [LASTID id]
Reply cmd_xclaim(Keys& k, const Args& a) {
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  Group g;
  if (!at.stream || !at.stream->find_group(a[2], &g)) return no_key_or_group(a[1], a[2]);
  Stream& s = *at.stream;
  int64_t min_idle = 0;
  if (!parse_int64(a[4], &min_idle))
    return Reply::error("ERR Invalid min-idle-time argument for XCLAIM");
  if (min_idle < 0) min_idle = 0;
  std::vector<StreamId> ids;
  size_t j = 5;
  for (StreamId id; j < a.size() && parse_id(a[j], 0, true, &id); ++j)
    ids.push_back(id);
  const int64_t now = k.now();
  int64_t retry_count = -1, delivered = -1;
  bool force = false, justid = false;
  StreamId last_id;
  for (; j < a.size(); ++j) {
    const bool more = j + 1 < a.size();
    const std::string& o = a[j];
    if (equals_ci(o, "force")) {
      force = true;
    } else if (equals_ci(o, "justid")) {
      justid = true;
    } else if (equals_ci(o, "idle") && more) {
      int64_t idle = 0;
      if (!parse_int64(a[++j], &idle))
        return Reply::error("ERR Invalid IDLE option argument for XCLAIM");
      delivered = now - idle;
    } else if (equals_ci(o, "time") && more) {
      if (!parse_int64(a[++j], &delivered))
        return Reply::error("ERR Invalid TIME option argument for XCLAIM");
    } else if (equals_ci(o, "retrycount") && more) {
      if (!parse_int64(a[++j], &retry_count))
        return Reply::error("ERR Invalid RETRYCOUNT option argument for XCLAIM");
    } else if (equals_ci(o, "lastid") && more) {
      if (!parse_id(a[++j], 0, true, &last_id)) return invalid_id();
    } else {
      return Reply::error("ERR Unrecognized XCLAIM option '" + o + "'");
    }
  }
  bool changed = false;
  if (last_id > g.last) {
    g.last = last_id;
    changed = true;
  }
  // A bogus time (before the epoch, or ahead of now) counts as now.
  if (delivered < 0 || delivered > now) delivered = now;
  bool consumer_seen = false;
  std::vector<Reply> out;
  for (const StreamId& id : ids) {
    std::optional<Nack> nack = s.find_nack(g, id);
    Item item;
    if (!s.get(id, &item)) {
      // The entry went: so does its pending entry.
      if (nack) {
        s.drop_nack(g, id, *nack);
        changed = true;
      }
      continue;
    }
    const bool forced = force && !nack;
    if (forced) nack = Nack{"", now, 1};
    if (!nack) continue;
    if (!forced && min_idle != 0 && now - nack->delivered < min_idle) continue;
    if (!consumer_seen) {
      s.touch_consumer(g, a[3]);
      consumer_seen = true;
    }
    Nack claimed = *nack;
    claimed.consumer = a[3];
    claimed.delivered = delivered;
    if (retry_count >= 0) {
      claimed.count = static_cast<uint64_t>(retry_count);
    } else if (!justid) {
      ++claimed.count;
    }
    s.set_nack(g, id, forced ? std::nullopt : nack, claimed);
    changed = true;
    out.push_back(justid ? id_reply(id) : item_reply(item));
  }
  if (changed) {
    s.put_group(g);
    s.save();
  }
  return Reply::array(std::move(out));
}

// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
Reply cmd_xautoclaim(Keys& k, const Args& a) {
  int64_t min_idle = 0;
  if (!parse_int64(a[4], &min_idle))
    return Reply::error("ERR Invalid min-idle-time argument for XAUTOCLAIM");
  if (min_idle < 0) min_idle = 0;
  StreamId start;
  if (auto e = parse_range_end(a[5], true, &start)) return *e;
  // COUNT's bound, as Redis's: the deleted IDs it may have to hold must fit a long's worth.
  constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 16;
  int64_t count = 100;
  bool justid = false;
  for (size_t j = 6; j < a.size(); ++j) {
    if (equals_ci(a[j], "count") && j + 1 < a.size()) {
      if (!parse_int64(a[j + 1], &count) || count < 1 || count > kMaxCount)
        return Reply::error("ERR COUNT must be > 0");
      ++j;
    } else if (equals_ci(a[j], "justid")) {
      justid = true;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  StreamAt at = stream_at(k, a[1]);
  if (at.error) return *at.error;
  Group g;
  if (!at.stream || !at.stream->find_group(a[2], &g)) return no_key_or_group(a[1], a[2]);
  Stream& s = *at.stream;
  const int64_t now = k.now();
  int64_t attempts = count * 10;
  StreamId cursor = kMinId;
  bool consumer_seen = false, changed = false;
  std::vector<Reply> claimed, deleted;
  s.each_pending(g, nullptr, start, [&](const StreamId& id, const Nack& n) {
    if (attempts == 0 || count == 0) {
      cursor = id;  // where the next call starts
      return false;
    }
    --attempts;
    Item item;
    if (!s.get(id, &item)) {
      s.drop_nack(g, id, n);
      deleted.push_back(id_reply(id));
      --count;
      changed = true;
      return true;
    }
    if (min_idle != 0 && now - n.delivered < min_idle) return true;
    if (!consumer_seen) {
      s.touch_consumer(g, a[3]);
      consumer_seen = true;
    }
    Nack moved = n;
    moved.consumer = a[3];
    moved.delivered = now;
    if (!justid) ++moved.count;
    s.set_nack(g, id, n, moved);
    changed = true;
    claimed.push_back(justid ? id_reply(id) : item_reply(item));
    --count;
    return true;
  });
  if (changed) {
    s.put_group(g);
    s.save();
  }
  return Reply::array(
      {id_reply(cursor), Reply::array(std::move(claimed)), Reply::array(std::move(deleted))});
}

// ---- XINFO -------------------------------------------------------------------------------------

Reply optional_int(const std::optional<int64_t>& v) {
  return v ? Reply::integer_of(*v) : Reply::null();
}
Reply entries_read_reply(const Group& g) {
  return g.entries_read == -1 ? Reply::null() : Reply::integer_of(g.entries_read);
}
Reply int_of(uint64_t v) {
  return Reply::integer_of(static_cast<int64_t>(v));
}

// XINFO STREAM key [FULL [COUNT n]]
Reply xinfo_stream(Stream& s, const Args& a) {
  bool full = false;
  int64_t count = 10;
  if (a.size() > 3) {
    if ((a.size() != 4 && a.size() != 6) || !equals_ci(a[3], "full") ||
        (a.size() == 6 && !equals_ci(a[4], "count")))
      return subcommand_syntax_error(a);
    full = true;
    if (a.size() == 6) {
      if (!parse_int64(a[5], &count)) return Reply::error(errors::kNotInteger);
      if (count < 0) count = 10;
    }
  }
  const Meta& m = s.meta();
  const uint64_t nodes = m.nodes;
  std::vector<Reply> out = {
      Reply::bulk("length"),
      int_of(s.length()),
      Reply::bulk("radix-tree-keys"),
      int_of(nodes),
      // The radix tree's own nodes: its root, and about two per key.
      Reply::bulk("radix-tree-nodes"),
      int_of(nodes == 0 ? 1 : 2 * nodes),
      Reply::bulk("last-generated-id"),
      id_reply(m.last),
      Reply::bulk("max-deleted-entry-id"),
      id_reply(m.max_deleted),
      Reply::bulk("entries-added"),
      int_of(m.entries_added),
      Reply::bulk("recorded-first-entry-id"),
      id_reply(m.first),
  };
  if (!full) {
    std::optional<Item> first = s.first_entry();
    std::optional<Item> last = s.last_entry();
    out.push_back(Reply::bulk("groups"));
    out.push_back(int_of(m.groups));
    out.push_back(Reply::bulk("first-entry"));
    out.push_back(first ? item_reply(*first) : Reply::null());
    out.push_back(Reply::bulk("last-entry"));
    out.push_back(last ? item_reply(*last) : Reply::null());
    return Reply::map(std::move(out));
  }
  const auto limit = static_cast<size_t>(count);  // 0: all
  out.push_back(Reply::bulk("entries"));
  out.push_back(items_reply(s.range(kMinId, kMaxId, limit, false)));
  std::vector<Reply> groups;
  for (Group& g : s.groups()) {
    std::vector<Reply> pending;
    s.each_pending(g, nullptr, kMinId, [&](const StreamId& id, const Nack& n) {
      pending.push_back(Reply::array({id_reply(id), Reply::bulk(n.consumer),
                                      Reply::integer_of(n.delivered), int_of(n.count)}));
      return limit == 0 || pending.size() < limit;
    });
    std::vector<Reply> consumers;
    for (const auto& [name, seen] : s.consumers(g)) {
      std::vector<Reply> own;
      s.each_pending(g, &name, kMinId, [&](const StreamId& id, const Nack& n) {
        own.push_back(
            Reply::array({id_reply(id), Reply::integer_of(n.delivered), int_of(n.count)}));
        return limit == 0 || own.size() < limit;
      });
      consumers.push_back(Reply::map({Reply::bulk("name"), Reply::bulk(name),
                                      Reply::bulk("seen-time"), Reply::integer_of(seen),
                                      Reply::bulk("pel-count"), int_of(s.consumer_pending(g, name)),
                                      Reply::bulk("pending"), Reply::array(std::move(own))}));
    }
    groups.push_back(
        Reply::map({Reply::bulk("name"), Reply::bulk(g.name), Reply::bulk("last-delivered-id"),
                    id_reply(g.last), Reply::bulk("entries-read"), entries_read_reply(g),
                    Reply::bulk("lag"), optional_int(s.lag(g)), Reply::bulk("pel-count"),
                    int_of(g.pending), Reply::bulk("pending"), Reply::array(std::move(pending)),
                    Reply::bulk("consumers"), Reply::array(std::move(consumers))}));
  }
  out.push_back(Reply::bulk("groups"));
  out.push_back(Reply::array(std::move(groups)));
  return Reply::map(std::move(out));
}

// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
Reply cmd_xinfo(Keys& k, const Args& a) {
  if (auto e = check_subcommand(a, "xinfo",
                                {{"consumers", 4}, {"groups", 3}, {"stream", -3}, {"help", 2}}))
    return *e;
  if (equals_ci(a[1], "help")) {
    return help_reply(a[0], {
                                "CONSUMERS <key> <groupname>",
                                "    Show consumers of <groupname>.",
                                "GROUPS <key>",
                                "    Show the stream consumer groups.",
                                "STREAM <key> [FULL [COUNT <count>]",
                                "    Show information about the stream.",
                            });
  }
  StreamAt at = stream_at(k, a[2]);
  if (at.error) return *at.error;
  if (!at.stream) return Reply::error(errors::kNoSuchKey);
  Stream& s = *at.stream;
  if (equals_ci(a[1], "stream")) return xinfo_stream(s, a);
  std::vector<Reply> out;
  if (equals_ci(a[1], "consumers")) {
    Group g;
    if (!s.find_group(a[3], &g)) return no_group_for_key(a[3], a[2]);
    for (const auto& [name, seen] : s.consumers(g)) {
      out.push_back(Reply::map({Reply::bulk("name"), Reply::bulk(name), Reply::bulk("pending"),
                                int_of(s.consumer_pending(g, name)), Reply::bulk("idle"),
                                Reply::integer_of(std::max<int64_t>(k.now() - seen, 0))}));
    }
    return Reply::array(std::move(out));
  }
  // GROUPS
  for (const Group& g : s.groups()) {
    out.push_back(
        Reply::map({Reply::bulk("name"), Reply::bulk(g.name), Reply::bulk("consumers"),
                    int_of(g.consumers), Reply::bulk("pending"), int_of(g.pending),
                    Reply::bulk("last-delivered-id"), id_reply(g.last), Reply::bulk("entries-read"),
                    entries_read_reply(g), Reply::bulk("lag"), optional_int(s.lag(g))}));
  }
  return Reply::array(std::move(out));
}

}  // namespace

const std::vector<Entry>& stream_entries() {
  static const std::vector<Entry> table = {
      {{"xadd", -5, kWrite, 1, 1, 1}, cmd_xadd},
      {{"xlen", 2, kReadOnly, 1, 1, 1}, cmd_xlen},
      {{"xrange", -4, kReadOnly, 1, 1, 1}, cmd_xrange},
      {{"xrevrange", -4, kReadOnly, 1, 1, 1}, cmd_xrevrange},
      {{"xdel", -3, kWrite, 1, 1, 1}, cmd_xdel},
      {{"xtrim", -4, kWrite, 1, 1, 1}, cmd_xtrim},
      {{"xsetid", -3, kWrite, 1, 1, 1}, cmd_xsetid},
      // The keys of XREAD and XREADGROUP follow STREAMS (command_keys finds them).
      {{"xread", -4, kReadOnly, 1, -1, 1}, cmd_xread},
      {{"xreadgroup", -7, kWrite, 1, -1, 1}, cmd_xreadgroup},
      {{"xgroup", -2, kWrite, 2, 2, 1}, cmd_xgroup},
      {{"xack", -4, kWrite, 1, 1, 1}, cmd_xack},
      {{"xpending", -3, kReadOnly, 1, 1, 1}, cmd_xpending},
      {{"xclaim", -6, kWrite, 1, 1, 1}, cmd_xclaim},
      {{"xautoclaim", -6, kWrite, 1, 1, 1}, cmd_xautoclaim},
      {{"xinfo", -2, kReadOnly, 2, 2, 1}, cmd_xinfo},
      // For the connection's blocking XREAD and XREADGROUP; no client can name them.
      {{"\x01xlastids", -2, kReadOnly, 1, -1, 1}, cmd_xlastids},
      {{"\x01xready", -2, kReadOnly, 0, 0, 0}, cmd_xready},
  };
  return table;
}

}  // namespace chorus::redis::internal
