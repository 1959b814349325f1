#include "server/tls.h"

#include <grpcpp/security/credentials.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>

#include "storage/file.h"

namespace chorus::server {
namespace {

using storage::Status;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "not PEM";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

storage::FileSystem& disk() {
  static const std::unique_ptr<storage::FileSystem> fs = storage::make_posix_file_system();
  return *fs;
}

Status read_text(const std::string& path, const char* flag, std::string* out) {
  Status st = disk().read_file(path, out);
  if (!st.is_ok()) {
    return Status::io_error(std::string(flag) + " '" + path +
                            "': cannot be read: " + st.to_string());
  }
  if (out->empty()) return Status::corruption(std::string(flag) + " '" + path + "': is empty");
  return Status::ok();
}

// What is wrong with the files now, empty if nothing: an error, else an expiry warning.
std::string tls_problem(const ClientTls& tls) {
  std::string expiry;
  Status st = check_tls_files(tls, &expiry);
  return st.is_ok() ? expiry : st.to_string();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> bio_of(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};

// Every revocation list in `pem`; an error naming the file if there is none.
Status read_crls(const std::string& pem, const std::string& path,
                 std::vector<std::unique_ptr<X509_CRL, CrlFree>>* out) {
  ERR_clear_error();
  auto bio = bio_of(pem);
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    out->emplace_back(crl);
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (out->empty()) {
    return Status::corruption("--client-crl-file '" + path +
                              "': holds no PEM certificate revocation list");
  }
  return Status::ok();
}

}  // namespace

storage::Status check_tls_files(const ClientTls& tls, std::string* expiry_warning) {
  ERR_clear_error();  // so an error reported below is this check's
  expiry_warning->clear();
  if (tls.has_identity()) {
    std::string cert_pem, key_pem;
    CHORUS_RETURN_IF_ERROR(read_text(tls.cert_file, "--cert-file", &cert_pem));
    CHORUS_RETURN_IF_ERROR(read_text(tls.key_file, "--key-file", &key_pem));
    std::unique_ptr<X509, X509Free> cert(
        PEM_read_bio_X509(bio_of(cert_pem).get(), nullptr, nullptr, nullptr));
    if (!cert) {
      return Status::corruption("--cert-file '" + tls.cert_file + "': not a PEM certificate (" +
                                openssl_error() + ")");
    }
    std::unique_ptr<EVP_PKEY, KeyFree> key(
        PEM_read_bio_PrivateKey(bio_of(key_pem).get(), nullptr, nullptr, nullptr));
    if (!key) {
      return Status::corruption("--key-file '" + tls.key_file +
                                "': not an unencrypted PEM private key (" + openssl_error() + ")");
    }
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      return Status::invalid_argument("--key-file '" + tls.key_file +
                                      "' is not the key of --cert-file '" + tls.cert_file + "'");
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
      *expiry_warning = "--cert-file '" + tls.cert_file +
                        "' has expired: TLS handshakes fail until it is replaced";
    } else if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) >= 0) {
      *expiry_warning =
          "--cert-file '" + tls.cert_file + "' is not valid yet: TLS handshakes fail until it is";
    }
  }
  if (!tls.crl_file.empty()) {
    std::string pem;
    CHORUS_RETURN_IF_ERROR(read_text(tls.crl_file, "--client-crl-file", &pem));
    std::vector<std::unique_ptr<X509_CRL, CrlFree>> crls;
    CHORUS_RETURN_IF_ERROR(read_crls(pem, tls.crl_file, &crls));
    for (const auto& crl : crls) {
      const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
      if (next != nullptr && X509_cmp_current_time(next) <= 0 && expiry_warning->empty()) {
        *expiry_warning = "--client-crl-file '" + tls.crl_file +
                          "' is past its next update: TLS handshakes with client "
                          "certificates fail until a newer list replaces it";
      }
    }
  }
  if (!tls.trusted_ca_file.empty()) {
    std::string ca_pem;
    CHORUS_RETURN_IF_ERROR(read_text(tls.trusted_ca_file, "--trusted-ca-file", &ca_pem));
    std::unique_ptr<X509, X509Free> ca(
        PEM_read_bio_X509(bio_of(ca_pem).get(), nullptr, nullptr, nullptr));
    if (!ca) {
      return Status::corruption("--trusted-ca-file '" + tls.trusted_ca_file +
                                "': holds no PEM certificate (" + openssl_error() + ")");
    }
  }
  return Status::ok();
}

// What the files hold now was judged (and logged) at start; only changes are news.
TlsFileWatch::TlsFileWatch(ClientTls tls, std::function<void(const std::string&)> on_change)
    : tls_(std::move(tls)),
      on_change_(std::move(on_change)),
      problem_(tls_problem(tls_)),
      thread_("chorus-tls", std::chrono::seconds(kTlsRefreshSeconds), [this] { check(); }) {}

TlsFileWatch::~TlsFileWatch() = default;

std::string TlsFileWatch::problem() const {
  std::lock_guard<std::mutex> lk(mu_);
  return problem_;
}

void TlsFileWatch::check() {
  std::string now = tls_problem(tls_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (now == problem_) return;  // only this thread writes problem_
  }
  // Told before it shows in problem(): whoever sees the new state finds it logged already.
  if (on_change_) on_change_(now);
  std::lock_guard<std::mutex> lk(mu_);
  problem_ = now;
}

storage::Status make_self_signed(const std::string& dir, const std::vector<std::string>& hosts,
                                 ClientTls* tls) {
  const std::string cert_path = dir + "/cert.pem";
  const std::string key_path = dir + "/key.pem";
  tls->cert_file = cert_path;
  tls->key_file = key_path;
  std::error_code ec;
  std::string expiry;
  if (std::filesystem::exists(cert_path, ec) && check_tls_files(*tls, &expiry).is_ok() &&
      expiry.empty()) {
    return Status::ok();  // made at an earlier start, and still good
  }
  ERR_clear_error();
  // The directory holds a private key: its owner's alone, as etcd's.
  std::filesystem::create_directories(dir, ec);
  if (!ec) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  if (ec) return Status::io_error("--auto-tls: cannot create " + dir + ": " + ec.message());
  auto failed = [](const std::string& what) {
    return Status::io_error("--auto-tls: " + what + " (" + openssl_error() + ")");
  };
  std::unique_ptr<EVP_PKEY, KeyFree> key(EVP_EC_gen("P-256"));
  if (!key) return failed("making a key");
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) return failed("making a certificate");
  X509_set_version(cert.get(), 2);
  // A random serial: a certificate made again after the files were removed differs.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), &BN_free);
  if (!serial || BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return failed("choosing a serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("chorus auto-tls"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  std::string san;
  for (const std::string& h : hosts) {
    bool ip =
        h.find_first_not_of("0123456789.") == std::string::npos || h.find(':') != std::string::npos;
    san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + h;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                                   {NID_ext_key_usage, "serverAuth,clientAuth"}}) {
    if (value.empty()) continue;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return failed("adding " + value);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return failed("signing");

  // Each file is written whole and durably (a crash leaves the old file or the new, never
  // half), inside the directory only the owner may enter; the key then gets the owner's mode.
  auto write_pem = [&](const char* file, auto write) -> Status {
    std::unique_ptr<BIO, BioFree> mem(BIO_new(BIO_s_mem()));
    if (!mem || write(mem.get()) != 1) return failed(std::string("encoding ") + file);
    char* data = nullptr;
    long size = BIO_get_mem_data(mem.get(), &data);
    return disk().write_file_atomic(dir, file, std::string_view(data, static_cast<size_t>(size)));
  };
  CHORUS_RETURN_IF_ERROR(write_pem("key.pem", [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  if (::chmod(key_path.c_str(), 0600) != 0) {
    return Status::io_error("--auto-tls: cannot make " + key_path + " its owner's alone");
  }
  return write_pem("cert.pem", [&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
}

std::shared_ptr<grpc::ChannelCredentials> member_channel_credentials(const std::string& url,
                                                                     const ClientTls& tls,
                                                                     std::string* error) {
  if (url.rfind("https://", 0) != 0) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  // Read at each new channel, so a rotated certificate is used from the next call on. An empty
  // root set would mean the system's CAs to gRPC: a CA file that cannot be read fails the call.
  Status st = Status::ok();
  if (!tls.trusted_ca_file.empty()) {
    st = read_text(tls.trusted_ca_file, "--trusted-ca-file", &options.pem_root_certs);
  }
  if (st.is_ok() && tls.has_identity()) {
    st = read_text(tls.key_file, "--key-file", &options.pem_private_key);
    if (st.is_ok()) st = read_text(tls.cert_file, "--cert-file", &options.pem_cert_chain);
  }
  if (!st.is_ok()) {
    *error = st.to_string();
    return nullptr;
  }
  return grpc::SslCredentials(options);
}

}  // namespace chorus::server
