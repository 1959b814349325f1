#include "kv/codec.h"

#include "base/coding.h"

namespace chorus::kv {
namespace {

using base::put_bytes;
using base::put_u64;
using base::put_u8;
using base::Reader;

// Version 2 added the auth revision; version 1 entries (without it) still decode.
constexpr uint8_t kCommandVersion = 2;
constexpr uint8_t kCommandVersionNoAuth = 1;
// A txn may hold at most this many operations at each level, whatever the server's own limit.
constexpr uint32_t kMaxOpsPerList = 1u << 16;
// The smallest encoded KeyValue: two empty strings and four integers.
constexpr size_t kMinKeyValueBytes = 4 + 8 + 8 + 8 + 4 + 8;
// The smallest encoded compare (two enums, three empty strings, a number), request op (a kind
// byte and a delete of empty strings) and response op (a kind byte and a put without prev_kv).
constexpr size_t kMinCompareBytes = 1 + 1 + 4 + 4 + 8 + 4;
constexpr size_t kMinRequestOpBytes = 1 + 4 + 4 + 1;
constexpr size_t kMinResponseOpBytes = 1 + 8 + 1;

void put_i64(std::string* out, int64_t v) {
  put_u64(out, static_cast<uint64_t>(v));
}
void put_bool(std::string* out, bool v) {
  put_u8(out, v ? 1 : 0);
}

template <typename Enum>
bool get_enum(Reader* r, uint8_t max, Enum* out) {
  uint8_t v = 0;
  if (!r->u8(&v) || v > max) return false;
  *out = static_cast<Enum>(v);
  return true;
}

// A count of elements each at least `min_bytes` long. A count the remaining input cannot hold
// is refused before anything is allocated for it, so a few hostile bytes claiming 65536 elements
// at every nesting level cost nothing.
bool get_count(Reader* r, size_t min_bytes, uint32_t* n) {
  return r->u32(n) && *n <= kMaxOpsPerList && *n <= r->remaining() / min_bytes;
}

void put_kv(std::string* out, const KeyValue& kv) {
  put_bytes(out, kv.key);
  put_i64(out, kv.create_revision);
  put_i64(out, kv.mod_revision);
  put_i64(out, kv.version);
  put_bytes(out, kv.value);
  put_i64(out, kv.lease);
}
bool get_kv(Reader* r, KeyValue* kv) {
  return r->bytes(&kv->key) && r->i64(&kv->create_revision) && r->i64(&kv->mod_revision) &&
         r->i64(&kv->version) && r->bytes(&kv->value) && r->i64(&kv->lease);
}

// ---- requests ----

void put_range(std::string* o, const RangeRequest& q) {
  put_bytes(o, q.key);
  put_bytes(o, q.range_end);
  put_i64(o, q.limit);
  put_i64(o, q.revision);
  put_u8(o, static_cast<uint8_t>(q.sort_order));
  put_u8(o, static_cast<uint8_t>(q.sort_target));
  put_bool(o, q.serializable);
  put_bool(o, q.keys_only);
  put_bool(o, q.count_only);
  put_i64(o, q.min_mod_revision);
  put_i64(o, q.max_mod_revision);
  put_i64(o, q.min_create_revision);
  put_i64(o, q.max_create_revision);
}
bool get_range(Reader* r, RangeRequest* q) {
  return r->bytes(&q->key) && r->bytes(&q->range_end) && r->i64(&q->limit) &&
         r->i64(&q->revision) && get_enum(r, 2, &q->sort_order) &&
         get_enum(r, 4, &q->sort_target) && r->boolean(&q->serializable) &&
         r->boolean(&q->keys_only) && r->boolean(&q->count_only) && r->i64(&q->min_mod_revision) &&
         r->i64(&q->max_mod_revision) && r->i64(&q->min_create_revision) &&
         r->i64(&q->max_create_revision);
}

void put_put(std::string* o, const PutRequest& q) {
  put_bytes(o, q.key);
  put_bytes(o, q.value);
  put_i64(o, q.lease);
  put_bool(o, q.prev_kv);
  put_bool(o, q.ignore_value);
  put_bool(o, q.ignore_lease);
}
bool get_put(Reader* r, PutRequest* q) {
  return r->bytes(&q->key) && r->bytes(&q->value) && r->i64(&q->lease) && r->boolean(&q->prev_kv) &&
         r->boolean(&q->ignore_value) && r->boolean(&q->ignore_lease);
}

void put_delete(std::string* o, const DeleteRangeRequest& q) {
  put_bytes(o, q.key);
  put_bytes(o, q.range_end);
  put_bool(o, q.prev_kv);
}
bool get_delete(Reader* r, DeleteRangeRequest* q) {
  return r->bytes(&q->key) && r->bytes(&q->range_end) && r->boolean(&q->prev_kv);
}

void put_txn(std::string* o, const TxnRequest& t);
bool get_txn(Reader* r, TxnRequest* t, int depth);

void put_ops(std::string* o, const std::vector<RequestOp>& ops) {
  base::put_u32(o, static_cast<uint32_t>(ops.size()));
  for (const RequestOp& op : ops) {
    put_u8(o, static_cast<uint8_t>(op.op.index()));
    if (auto* q = std::get_if<RangeRequest>(&op.op)) put_range(o, *q);
    if (auto* q = std::get_if<PutRequest>(&op.op)) put_put(o, *q);
    if (auto* q = std::get_if<DeleteRangeRequest>(&op.op)) put_delete(o, *q);
    if (auto* q = std::get_if<std::shared_ptr<TxnRequest>>(&op.op)) put_txn(o, **q);
  }
}
bool get_ops(Reader* r, std::vector<RequestOp>* ops, int depth) {
  uint32_t n = 0;
  if (!get_count(r, kMinRequestOpBytes, &n)) return false;
  // Grown as elements arrive, so memory follows the bytes actually decoded.
  for (uint32_t i = 0; i < n; ++i) {
    RequestOp& op = ops->emplace_back();
    uint8_t kind = 0;
    if (!r->u8(&kind)) return false;
    bool ok = false;
    switch (kind) {
      case 0:
        ok = get_range(r, &op.op.emplace<RangeRequest>());
        break;
      case 1:
        ok = get_put(r, &op.op.emplace<PutRequest>());
        break;
      case 2:
        ok = get_delete(r, &op.op.emplace<DeleteRangeRequest>());
        break;
      case 3: {
        auto t = std::make_shared<TxnRequest>();
        ok = get_txn(r, t.get(), depth + 1);
        op.op = std::move(t);
        break;
      }
      default:
        return false;
    }
    if (!ok) return false;
  }
  return true;
}

void put_txn(std::string* o, const TxnRequest& t) {
  base::put_u32(o, static_cast<uint32_t>(t.compare.size()));
  for (const Compare& c : t.compare) {
    put_u8(o, static_cast<uint8_t>(c.result));
    put_u8(o, static_cast<uint8_t>(c.target));
    put_bytes(o, c.key);
    put_bytes(o, c.range_end);
    put_i64(o, c.number);
    put_bytes(o, c.value);
  }
  put_ops(o, t.success);
  put_ops(o, t.failure);
}
bool get_txn(Reader* r, TxnRequest* t, int depth) {
  if (depth > kMaxTxnDepth) return false;
  uint32_t n = 0;
  if (!get_count(r, kMinCompareBytes, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    Compare& c = t->compare.emplace_back();
    if (!get_enum(r, 3, &c.result) || !get_enum(r, 4, &c.target) || !r->bytes(&c.key) ||
        !r->bytes(&c.range_end) || !r->i64(&c.number) || !r->bytes(&c.value))
      return false;
  }
  return get_ops(r, &t->success, depth) && get_ops(r, &t->failure, depth);
}

// ---- responses ----

void put_range_resp(std::string* o, const RangeResponse& p) {
  put_i64(o, p.revision);
  base::put_u32(o, static_cast<uint32_t>(p.kvs.size()));
  for (const KeyValue& kv : p.kvs)
    put_kv(o, kv);
  put_bool(o, p.more);
  put_i64(o, p.count);
}
bool get_range_resp(Reader* r, RangeResponse* p) {
  uint32_t n = 0;
  if (!r->i64(&p->revision) || !r->u32(&n) || n > r->remaining() / kMinKeyValueBytes) return false;
  p->kvs.resize(n);
  for (KeyValue& kv : p->kvs)
    if (!get_kv(r, &kv)) return false;
  return r->boolean(&p->more) && r->i64(&p->count);
}

void put_opt_kv(std::string* o, const std::optional<KeyValue>& kv) {
  put_bool(o, kv.has_value());
  if (kv) put_kv(o, *kv);
}
bool get_opt_kv(Reader* r, std::optional<KeyValue>* kv) {
  bool has = false;
  if (!r->boolean(&has)) return false;
  if (!has) return true;
  return get_kv(r, &kv->emplace());
}

void put_delete_resp(std::string* o, const DeleteRangeResponse& p) {
  put_i64(o, p.revision);
  put_i64(o, p.deleted);
  base::put_u32(o, static_cast<uint32_t>(p.prev_kvs.size()));
  for (const KeyValue& kv : p.prev_kvs)
    put_kv(o, kv);
}
bool get_delete_resp(Reader* r, DeleteRangeResponse* p) {
  uint32_t n = 0;
  if (!r->i64(&p->revision) || !r->i64(&p->deleted) || !r->u32(&n) ||
      n > r->remaining() / kMinKeyValueBytes)
    return false;
  p->prev_kvs.resize(n);
  for (KeyValue& kv : p->prev_kvs)
    if (!get_kv(r, &kv)) return false;
  return true;
}

void put_txn_resp(std::string* o, const TxnResponse& t);
bool get_txn_resp(Reader* r, TxnResponse* t, int depth);

void put_txn_resp(std::string* o, const TxnResponse& t) {
  put_i64(o, t.revision);
  put_bool(o, t.succeeded);
  base::put_u32(o, static_cast<uint32_t>(t.responses.size()));
  for (const ResponseOp& op : t.responses) {
    put_u8(o, static_cast<uint8_t>(op.op.index()));
    if (auto* p = std::get_if<RangeResponse>(&op.op)) put_range_resp(o, *p);
    if (auto* p = std::get_if<PutResponse>(&op.op)) {
      put_i64(o, p->revision);
      put_opt_kv(o, p->prev_kv);
    }
    if (auto* p = std::get_if<DeleteRangeResponse>(&op.op)) put_delete_resp(o, *p);
    if (auto* p = std::get_if<std::shared_ptr<TxnResponse>>(&op.op)) put_txn_resp(o, **p);
  }
}
bool get_txn_resp(Reader* r, TxnResponse* t, int depth) {
  if (depth > kMaxTxnDepth) return false;
  uint32_t n = 0;
  if (!r->i64(&t->revision) || !r->boolean(&t->succeeded) || !get_count(r, kMinResponseOpBytes, &n))
    return false;
  for (uint32_t i = 0; i < n; ++i) {
    ResponseOp& op = t->responses.emplace_back();
    uint8_t kind = 0;
    if (!r->u8(&kind)) return false;
    bool ok = false;
    switch (kind) {
      case 0:
        ok = get_range_resp(r, &op.op.emplace<RangeResponse>());
        break;
      case 1: {
        auto& p = op.op.emplace<PutResponse>();
        ok = r->i64(&p.revision) && get_opt_kv(r, &p.prev_kv);
        break;
      }
      case 2:
        ok = get_delete_resp(r, &op.op.emplace<DeleteRangeResponse>());
        break;
      case 3: {
        auto sub = std::make_shared<TxnResponse>();
        ok = get_txn_resp(r, sub.get(), depth + 1);
        op.op = std::move(sub);
        break;
      }
      default:
        return false;
    }
    if (!ok) return false;
  }
  return true;
}

void put_auth(std::string* o, const AuthRequest& q) {
  put_u8(o, static_cast<uint8_t>(q.kind));
  put_bytes(o, q.name);
  put_bytes(o, q.role);
  put_bytes(o, q.password_hash);
  put_bool(o, q.no_password);
  put_u8(o, static_cast<uint8_t>(q.perm.type));
  put_bytes(o, q.perm.key);
  put_bytes(o, q.perm.range_end);
  put_bytes(o, q.token);
  put_u64(o, q.checked_revision);
}

bool get_auth(Reader* r, AuthRequest* q) {
  return get_enum(r, AuthRequest::kLastKind, &q->kind) && r->bytes(&q->name) &&
         r->bytes(&q->role) && r->bytes(&q->password_hash) && r->boolean(&q->no_password) &&
         get_enum(r, static_cast<uint8_t>(PermType::kReadWrite), &q->perm.type) &&
         r->bytes(&q->perm.key) && r->bytes(&q->perm.range_end) && r->bytes(&q->token) &&
         r->u64(&q->checked_revision);
}

}  // namespace

bool RequestOp::operator==(const RequestOp& o) const {
  if (op.index() != o.op.index()) return false;
  if (auto* a = std::get_if<std::shared_ptr<TxnRequest>>(&op))
    return **a == *std::get<std::shared_ptr<TxnRequest>>(o.op);
  return op == o.op;
}

bool ResponseOp::operator==(const ResponseOp& o) const {
  if (op.index() != o.op.index()) return false;
  if (auto* a = std::get_if<std::shared_ptr<TxnResponse>>(&op))
    return **a == *std::get<std::shared_ptr<TxnResponse>>(o.op);
  return op == o.op;
}

std::string encode_command(const Command& c) {
  std::string o;
  put_u8(&o, kCommandVersion);
  put_u64(&o, c.client_id);
  put_u64(&o, c.sequence);
  put_i64(&o, c.log_time_ms);
  put_u64(&o, c.auth_revision);
  put_u8(&o, static_cast<uint8_t>(c.op.index()));
  if (auto* q = std::get_if<PutRequest>(&c.op)) put_put(&o, *q);
  if (auto* q = std::get_if<DeleteRangeRequest>(&c.op)) put_delete(&o, *q);
  if (auto* q = std::get_if<TxnRequest>(&c.op)) put_txn(&o, *q);
  if (auto* q = std::get_if<CompactionRequest>(&c.op)) put_i64(&o, q->revision);
  if (auto* q = std::get_if<LeaseGrantRequest>(&c.op)) {
    put_i64(&o, q->id);
    put_i64(&o, q->ttl);
  }
  if (auto* q = std::get_if<LeaseRevokeRequest>(&c.op)) put_i64(&o, q->id);
  if (auto* q = std::get_if<AuthRequest>(&c.op)) put_auth(&o, *q);
  if (auto* q = std::get_if<LeaseCheckpointRequest>(&c.op)) {
    put_u64(&o, q->checkpoints.size());
    for (const auto& [id, remaining] : q->checkpoints) {
      put_i64(&o, id);
      put_i64(&o, remaining);
    }
  }
  return o;
}

std::optional<Command> decode_command(std::string_view bytes) {
  Reader r(bytes);
  Command c;
  uint8_t version = 0;
  uint8_t kind = 0;
  if (!r.u8(&version) || (version != kCommandVersion && version != kCommandVersionNoAuth) ||
      !r.u64(&c.client_id) || !r.u64(&c.sequence) || !r.i64(&c.log_time_ms) ||
      (version == kCommandVersion && !r.u64(&c.auth_revision)) || !r.u8(&kind))
    return std::nullopt;
  bool ok = false;
  switch (kind) {
    case 0:
      ok = get_put(&r, &c.op.emplace<PutRequest>());
      break;
    case 1:
      ok = get_delete(&r, &c.op.emplace<DeleteRangeRequest>());
      break;
    case 2:
      ok = get_txn(&r, &c.op.emplace<TxnRequest>(), 0);
      break;
    case 3:
      ok = r.i64(&c.op.emplace<CompactionRequest>().revision);
      break;
    case 4: {
      auto& q = c.op.emplace<LeaseGrantRequest>();
      ok = r.i64(&q.id) && r.i64(&q.ttl);
      break;
    }
    case 5:
      ok = r.i64(&c.op.emplace<LeaseRevokeRequest>().id);
      break;
    case 6:
      ok = get_auth(&r, &c.op.emplace<AuthRequest>());
      break;
    case 7: {
      auto& q = c.op.emplace<LeaseCheckpointRequest>();
      uint64_t n = 0;
      ok = r.u64(&n) && n <= r.remaining() / 16;
      for (uint64_t i = 0; ok && i < n; ++i) {
        int64_t id = 0, remaining = 0;
        ok = r.i64(&id) && r.i64(&remaining);
        q.checkpoints.emplace_back(id, remaining);
      }
      break;
    }
    default:
      break;
  }
  if (!ok || !r.done()) return std::nullopt;
  return c;
}

std::string encode_response(const Response& p) {
  std::string o;
  put_u8(&o, static_cast<uint8_t>(p.error.code));
  put_bytes(&o, p.error.message);
  put_u8(&o, static_cast<uint8_t>(p.op.index()));
  if (auto* q = std::get_if<PutResponse>(&p.op)) {
    put_i64(&o, q->revision);
    put_opt_kv(&o, q->prev_kv);
  }
  if (auto* q = std::get_if<DeleteRangeResponse>(&p.op)) put_delete_resp(&o, *q);
  if (auto* q = std::get_if<TxnResponse>(&p.op)) put_txn_resp(&o, *q);
  if (auto* q = std::get_if<CompactionResponse>(&p.op)) put_i64(&o, q->revision);
  if (auto* q = std::get_if<LeaseGrantResponse>(&p.op)) {
    put_i64(&o, q->revision);
    put_i64(&o, q->id);
    put_i64(&o, q->ttl);
  }
  if (auto* q = std::get_if<LeaseRevokeResponse>(&p.op)) put_i64(&o, q->revision);
  if (auto* q = std::get_if<AuthResponse>(&p.op)) {
    put_i64(&o, q->revision);
    put_u64(&o, q->auth_revision);
    put_u8(&o, static_cast<uint8_t>(q->tokens));
    put_bytes(&o, q->user);
    put_bytes(&o, q->token);
  }
  return o;
}

std::optional<Response> decode_response(std::string_view bytes) {
  Reader r(bytes);
  Response p;
  uint8_t kind = 0;
  if (!get_enum(&r, static_cast<uint8_t>(kLastCode), &p.error.code) || !r.bytes(&p.error.message) ||
      !r.u8(&kind))
    return std::nullopt;
  bool ok = false;
  switch (kind) {
    case 0:
      ok = true;
      break;
    case 1: {
      auto& q = p.op.emplace<PutResponse>();
      ok = r.i64(&q.revision) && get_opt_kv(&r, &q.prev_kv);
      break;
    }
    case 2:
      ok = get_delete_resp(&r, &p.op.emplace<DeleteRangeResponse>());
      break;
    case 3:
      ok = get_txn_resp(&r, &p.op.emplace<TxnResponse>(), 0);
      break;
    case 4:
      ok = r.i64(&p.op.emplace<CompactionResponse>().revision);
      break;
    case 5: {
      auto& q = p.op.emplace<LeaseGrantResponse>();
      ok = r.i64(&q.revision) && r.i64(&q.id) && r.i64(&q.ttl);
      break;
    }
    case 6:
      ok = r.i64(&p.op.emplace<LeaseRevokeResponse>().revision);
      break;
    case 7: {
      auto& q = p.op.emplace<AuthResponse>();
      ok = r.i64(&q.revision) && r.u64(&q.auth_revision) &&
           get_enum(&r, static_cast<uint8_t>(TokenAction::kDropAll), &q.tokens) &&
           r.bytes(&q.user) && r.bytes(&q.token);
      break;
    }
    default:
      break;
  }
  if (!ok || !r.done()) return std::nullopt;
  return p;
}

std::string encode_key_value(const KeyValue& kv) {
  std::string o;
  put_kv(&o, kv);
  return o;
}

bool decode_key_value(std::string_view bytes, KeyValue* out) {
  Reader r(bytes);
  return get_kv(&r, out) && r.done();
}

}  // namespace chorus::kv
