// Helpers shared by the fuzz targets: invariant checks that abort with a readable reason (libFuzzer
// then saves the input as a crash), and loading the fixed keys of fuzz_keys.h.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include <openssl/pem.h>

#include "common/ssl_ptr.h"
#include "fuzz/fuzz_keys.h"
#include "signer/signing_key.h"

namespace kubehsm::fuzz {

// Aborts (a libFuzzer crash) when `cond` is false, printing the invariant that broke.
#define KH_FUZZ_CHECK(cond, what)                                                                   \
  do {                                                                                             \
    if (!(cond)) ::kubehsm::fuzz::InvariantFailed(#cond, (what), __FILE__, __LINE__);              \
  } while (0)

[[noreturn]] inline void InvariantFailed(const char* cond, std::string_view what, const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n  %.*s\n", file, line, cond, static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A SigningKey from one of the fixed PEM private keys; aborts if the key does not load (a broken
// build, not a finding).
inline signer::SigningKey LoadFixedKey(const char* pem) {
  BioPtr bio(BIO_new_mem_buf(pem, -1));
  EvpPkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  auto key = pkey ? signer::SigningKey::Create(std::move(pkey), nullptr) : Result<signer::SigningKey>(Internal("no key"));
  if (!key.ok()) InvariantFailed("LoadFixedKey", key.status().message(), __FILE__, __LINE__);
  return std::move(*key);
}

}  // namespace kubehsm::fuzz
