#include "server/convert.h"

namespace chorus::server {

kv::RangeRequest to_kv(const pb::RangeRequest& r) {
  kv::RangeRequest out;
  out.key = r.key();
  out.range_end = r.range_end();
  out.limit = r.limit();
  out.revision = r.revision();
  switch (r.sort_order()) {
    case pb::RangeRequest_SortOrder_ASCEND:
      out.sort_order = kv::SortOrder::kAscend;
      break;
    case pb::RangeRequest_SortOrder_DESCEND:
      out.sort_order = kv::SortOrder::kDescend;
      break;
    default:
      out.sort_order = kv::SortOrder::kNone;
  }
  switch (r.sort_target()) {
    case pb::RangeRequest_SortTarget_VERSION:
      out.sort_target = kv::SortTarget::kVersion;
      break;
    case pb::RangeRequest_SortTarget_CREATE:
      out.sort_target = kv::SortTarget::kCreate;
      break;
    case pb::RangeRequest_SortTarget_MOD:
      out.sort_target = kv::SortTarget::kMod;
      break;
    case pb::RangeRequest_SortTarget_VALUE:
      out.sort_target = kv::SortTarget::kValue;
      break;
    default:
      out.sort_target = kv::SortTarget::kKey;
  }
  out.serializable = r.serializable();
  out.keys_only = r.keys_only();
  out.count_only = r.count_only();
  out.min_mod_revision = r.min_mod_revision();
  out.max_mod_revision = r.max_mod_revision();
  out.min_create_revision = r.min_create_revision();
  out.max_create_revision = r.max_create_revision();
  return out;
}

kv::PutRequest to_kv(const pb::PutRequest& r) {
  kv::PutRequest out;
  out.key = r.key();
  out.value = r.value();
  out.lease = r.lease();
  out.prev_kv = r.prev_kv();
  out.ignore_value = r.ignore_value();
  out.ignore_lease = r.ignore_lease();
  return out;
}

kv::DeleteRangeRequest to_kv(const pb::DeleteRangeRequest& r) {
  kv::DeleteRangeRequest out;
  out.key = r.key();
  out.range_end = r.range_end();
  out.prev_kv = r.prev_kv();
  return out;
}

namespace {

kv::Compare compare_to_kv(const pb::Compare& c) {
  kv::Compare out;
  switch (c.result()) {
    case pb::Compare_CompareResult_GREATER:
      out.result = kv::Compare::Result::kGreater;
      break;
    case pb::Compare_CompareResult_LESS:
      out.result = kv::Compare::Result::kLess;
      break;
    case pb::Compare_CompareResult_NOT_EQUAL:
      out.result = kv::Compare::Result::kNotEqual;
      break;
    default:
      out.result = kv::Compare::Result::kEqual;
  }
  out.key = c.key();
  out.range_end = c.range_end();
  switch (c.target()) {
    case pb::Compare_CompareTarget_CREATE:
      out.target = kv::Compare::Target::kCreate;
      out.number = c.create_revision();
      break;
    case pb::Compare_CompareTarget_MOD:
      out.target = kv::Compare::Target::kMod;
      out.number = c.mod_revision();
      break;
    case pb::Compare_CompareTarget_VALUE:
      out.target = kv::Compare::Target::kValue;
      out.value = c.value();
      break;
    case pb::Compare_CompareTarget_LEASE:
      out.target = kv::Compare::Target::kLease;
      out.number = c.lease();
      break;
    default:
      out.target = kv::Compare::Target::kVersion;
      out.number = c.version();
  }
  return out;
}

bool op_to_kv(const pb::RequestOp& op, kv::RequestOp* out) {
  switch (op.request_case()) {
    case pb::RequestOp::kRequestRange:
      out->op = to_kv(op.request_range());
      return true;
    case pb::RequestOp::kRequestPut:
      out->op = to_kv(op.request_put());
      return true;
    case pb::RequestOp::kRequestDeleteRange:
      out->op = to_kv(op.request_delete_range());
      return true;
    case pb::RequestOp::kRequestTxn:
      out->op = std::make_shared<kv::TxnRequest>(to_kv(op.request_txn()));
      return true;
    default:
      return false;  // an empty op, as etcd skips it
  }
}

}  // namespace

kv::TxnRequest to_kv(const pb::TxnRequest& r) {
  kv::TxnRequest out;
  for (const auto& c : r.compare())
    out.compare.push_back(compare_to_kv(c));
  for (const auto& op : r.success()) {
    kv::RequestOp o;
    if (op_to_kv(op, &o)) out.success.push_back(std::move(o));
  }
  for (const auto& op : r.failure()) {
    kv::RequestOp o;
    if (op_to_kv(op, &o)) out.failure.push_back(std::move(o));
  }
  return out;
}

void to_pb(const kv::KeyValue& kv, ::mvccpb::KeyValue* out) {
  out->set_key(kv.key);
  out->set_create_revision(kv.create_revision);
  out->set_mod_revision(kv.mod_revision);
  out->set_version(kv.version);
  out->set_value(kv.value);
  out->set_lease(kv.lease);
}

void to_pb(const kv::RangeResponse& r, pb::RangeResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->mutable_kvs()->Reserve(static_cast<int>(r.kvs.size()));
  for (const auto& kv : r.kvs)
    to_pb(kv, out->add_kvs());
  out->set_more(r.more);
  out->set_count(r.count);
}

void to_pb(const kv::PutResponse& r, pb::PutResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  if (r.prev_kv) to_pb(*r.prev_kv, out->mutable_prev_kv());
}

void to_pb(const kv::DeleteRangeResponse& r, pb::DeleteRangeResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->set_deleted(r.deleted);
  for (const auto& kv : r.prev_kvs)
    to_pb(kv, out->add_prev_kvs());
}

void to_pb(const kv::TxnResponse& r, pb::TxnResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->set_succeeded(r.succeeded);
  for (const kv::ResponseOp& op : r.responses) {
    pb::ResponseOp* o = out->add_responses();
    if (const auto* range = std::get_if<kv::RangeResponse>(&op.op)) {
      to_pb(*range, o->mutable_response_range());
    } else if (const auto* put = std::get_if<kv::PutResponse>(&op.op)) {
      to_pb(*put, o->mutable_response_put());
    } else if (const auto* del = std::get_if<kv::DeleteRangeResponse>(&op.op)) {
      to_pb(*del, o->mutable_response_delete_range());
    } else if (const auto* txn = std::get_if<std::shared_ptr<kv::TxnResponse>>(&op.op)) {
      if (*txn) to_pb(**txn, o->mutable_response_txn());
    }
  }
}

void to_pb(const kv::Event& e, ::mvccpb::Event* out) {
  out->set_type(e.type == kv::Event::Type::kPut ? ::mvccpb::Event_EventType_PUT
                                                : ::mvccpb::Event_EventType_DELETE);
  to_pb(e.kv, out->mutable_kv());
  if (e.prev_kv) to_pb(*e.prev_kv, out->mutable_prev_kv());
}

}  // namespace chorus::server
