// chorus-lincheck: checks a key-value history recorded by a real-process test for
// linearizability, with the same checker the simulator uses.
//
//   chorus-lincheck HISTORY_FILE
//
// One operation per line, fields separated by single spaces (keys and values without spaces):
//   CLIENT CALL_NS RETURN_NS put KEY VALUE ok        an acknowledged write
//   CLIENT CALL_NS - put KEY VALUE                   a write whose outcome is unknown
//   CLIENT CALL_NS RETURN_NS get KEY found VALUE     a read that saw VALUE
//   CLIENT CALL_NS RETURN_NS get KEY missing         a read that found no key
//   CLIENT CALL_NS RETURN_NS cas KEY OLD NEW ok      a swap of OLD for NEW that happened
//   CLIENT CALL_NS RETURN_NS cas KEY OLD NEW fail    a swap refused (the key did not hold OLD)
//   CLIENT CALL_NS - cas KEY OLD NEW                 a swap whose outcome is unknown
// Exit status: 0 linearizable, 1 not linearizable (the explanation is printed), 2 bad input or
// the search budget ran out.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "check/kv_model.h"
#include "check/linearizability.h"

namespace {

using chorus::check::KvInput;
using chorus::check::KvModel;
using chorus::check::KvOutput;
using Op = chorus::check::ModelOperation<KvModel>;

bool parse_line(const std::string& line, Op* op, std::string* error) {
  std::istringstream in(line);
  std::string client, call, ret, kind, key;
  if (!(in >> client >> call >> ret >> kind >> key)) {
    *error = "expected CLIENT CALL RETURN KIND KEY";
    return false;
  }
  try {
    op->client_id = std::stoull(client);
    op->call_time = std::stoull(call);
    op->return_time = ret == "-" ? chorus::check::kNever : std::stoull(ret);
  } catch (const std::exception&) {
    *error = "client, call and return must be numbers (return may be -)";
    return false;
  }
  if (op->return_time != chorus::check::kNever && op->return_time < op->call_time) {
    *error = "returns before it is called";
    return false;
  }
  if (kind == "put") {
    std::string value, result;
    if (!(in >> value)) {
      *error = "put needs a value";
      return false;
    }
    op->input = KvInput::write(key, value);
    op->output = KvOutput::write_ok();
    if (op->return_time != chorus::check::kNever && (!(in >> result) || result != "ok")) {
      *error = "an acknowledged put ends with ok";
      return false;
    }
    return true;
  }
  if (kind == "get") {
    std::string result, value;
    op->input = KvInput::read(key);
    if (!(in >> result)) {
      *error = "get needs found VALUE or missing";
      return false;
    }
    if (result == "found" && (in >> value)) {
      op->output = KvOutput::found(value);
      return true;
    }
    if (result == "missing") {
      op->output = KvOutput::not_found();
      return true;
    }
    *error = "get needs found VALUE or missing";
    return false;
  }
  if (kind == "cas") {
    std::string expected, value, result;
    if (!(in >> expected >> value)) {
      *error = "cas needs OLD and NEW";
      return false;
    }
    op->input = KvInput::cas(key, expected, value);
    if (op->return_time == chorus::check::kNever) {
      op->output = KvOutput::cas_failed();
      return true;
    }
    if (!(in >> result) || (result != "ok" && result != "fail")) {
      *error = "an answered cas ends with ok or fail";
      return false;
    }
    op->output = result == "ok" ? KvOutput::cas_ok() : KvOutput::cas_failed();
    return true;
  }
  *error = "unknown operation " + kind;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: chorus-lincheck HISTORY_FILE\n");
    return 2;
  }
  std::ifstream file(argv[1]);
  if (!file) {
    std::fprintf(stderr, "chorus-lincheck: cannot read %s\n", argv[1]);
    return 2;
  }
  std::vector<Op> history;
  std::string line;
  size_t number = 0;
  while (std::getline(file, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    Op op;
    std::string error;
    if (!parse_line(line, &op, &error)) {
      std::fprintf(stderr, "chorus-lincheck: %s:%zu: %s\n", argv[1], number, error.c_str());
      return 2;
    }
    history.push_back(std::move(op));
  }
  chorus::check::CheckReport report = chorus::check::check_linearizable<KvModel>(history);
  switch (report.result) {
    case chorus::check::CheckResult::kOk:
      std::printf("linearizable: %zu operations\n", history.size());
      return 0;
    case chorus::check::CheckResult::kIllegal:
      std::printf("%s\n", report.explanation.c_str());
      return 1;
    case chorus::check::CheckResult::kUnknown:
      std::printf("undecided: %s\n", report.explanation.c_str());
      return 2;
  }
  return 2;
}
