// Translation between etcd's protobuf messages and the state machine's plain types. Only the
// server's gRPC files include this (and through it the generated code).
#pragma once

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "kv/types.h"

namespace chorus::server {

namespace pb = ::etcdserverpb;

kv::RangeRequest to_kv(const pb::RangeRequest& r);
kv::PutRequest to_kv(const pb::PutRequest& r);
kv::DeleteRangeRequest to_kv(const pb::DeleteRangeRequest& r);
kv::TxnRequest to_kv(const pb::TxnRequest& r);

void to_pb(const kv::KeyValue& kv, ::mvccpb::KeyValue* out);
void to_pb(const kv::RangeResponse& r, pb::RangeResponse* out);
void to_pb(const kv::PutResponse& r, pb::PutResponse* out);
void to_pb(const kv::DeleteRangeResponse& r, pb::DeleteRangeResponse* out);
void to_pb(const kv::TxnResponse& r, pb::TxnResponse* out);
void to_pb(const kv::Event& e, ::mvccpb::Event* out);

}  // namespace chorus::server
