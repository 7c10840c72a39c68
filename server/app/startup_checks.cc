#include "server/app/startup_checks.h"

#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora::serving {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

absl::Status CheckTlsKeyPair(const std::string& cert_file,
                             const std::string& key_file) {
  DYLORA_ASSIGN_OR_RETURN(std::string cert_pem, ReadFileToString(cert_file));
  DYLORA_ASSIGN_OR_RETURN(std::string key_pem, ReadFileToString(key_file));
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(MemoryBio(cert_pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls-cert ", cert_file, " holds no PEM certificate"));
  }
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_bio_PrivateKey(
      MemoryBio(key_pem).get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls-key ", key_file,
        " holds no unencrypted PEM private key (encrypted keys are not "
        "supported)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls-key ", key_file,
        " is not the private key of the certificate in tls-cert ", cert_file));
  }
  return absl::OkStatus();
}

absl::Status DiagnoseListenFailure(const std::string& host, int port) {
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int error = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                      service.c_str(), &hints, &found);
      error != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", where, ": host \"", host,
                     "\" does not resolve (", gai_strerror(error), ")"));
  }
  int bind_errno = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    // As gRPC does: a port in TIME_WAIT alone is not "in use".
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0) bind_errno = errno;
    ::close(fd);
    if (bind_errno != 0) break;
  }
  ::freeaddrinfo(found);
  switch (bind_errno) {
    case EADDRINUSE:
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", where,
          ": the port is already in use (another dylora-serve? pick "
          "another --port, or 0 for a free one)"));
    case EADDRNOTAVAIL:
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", where, ": ", host,
                       " is not an address of this machine"));
    case EACCES:
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", where,
          ": permission denied (ports below 1024 need privileges)"));
    case 0:
      break;
    default:
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", where, ": ", std::strerror(bind_errno)));
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot listen on ", where, " (gRPC refused it; its log says why)"));
}

}  // namespace dylora::serving
