// Helpers shared by the signer/pki tests: DER builders for expected encodings and file readers.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "signer/pki/certificate.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki::testutil {

// A DER TLV with definite length.
inline std::string Tlv(uint8_t tag, const std::string& content) {
  std::string out(1, static_cast<char>(tag));
  const size_t n = content.size();
  if (n < 0x80) {
    out += static_cast<char>(n);
  } else {
    std::string len;
    for (size_t v = n; v != 0; v >>= 8) len.insert(len.begin(), static_cast<char>(v & 0xff));
    out += static_cast<char>(0x80 | len.size());
    out += len;
  }
  return out + content;
}

inline std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

inline const std::string kOidO = Bytes({0x06, 0x03, 0x55, 0x04, 0x0A});
inline const std::string kOidCn = Bytes({0x06, 0x03, 0x55, 0x04, 0x03});
inline const std::string kOidServerAuth = Bytes({0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01});
inline const std::string kOidClientAuth = Bytes({0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02});

// The attribute value as Go encodes it: PrintableString (0x13) or UTF8String (0x0C).
inline std::string GoString(const std::string& v) {
  const bool printable = std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
  });
  return Tlv(printable ? 0x13 : 0x0C, v);
}

// Name = SEQUENCE { SET { O=... (all O values, DER-sorted) }, SET { CN=... } }.
inline std::string ExpectedName(const std::string& cn, const std::vector<std::string>& orgs) {
  std::string rdns;
  if (!orgs.empty()) {
    std::vector<std::string> atvs;
    for (const auto& o : orgs) atvs.push_back(Tlv(0x30, kOidO + GoString(o)));
    std::sort(atvs.begin(), atvs.end());
    std::string set;
    for (const auto& a : atvs) set += a;
    rdns += Tlv(0x31, set);
  }
  rdns += Tlv(0x31, Tlv(0x30, kOidCn + GoString(cn)));
  return Tlv(0x30, rdns);
}

inline std::string ExpectedEku(const std::vector<ExtKeyUsage>& ekus) {
  std::string s;
  for (auto e : ekus) s += e == ExtKeyUsage::kServerAuth ? kOidServerAuth : kOidClientAuth;
  return Tlv(0x30, s);
}

// GeneralNames: every dNSName [2] first, then every iPAddress [7] (4 or 16 bytes).
inline std::string ExpectedSan(const SanSet& sans) {
  std::string s;
  for (const auto& d : sans.dns) s += Tlv(0x82, d);
  for (const auto& ip : sans.ips) s += Tlv(0x87, ParseIp(ip));
  return Tlv(0x30, s);
}

inline int FileMode(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

inline X509Ptr MustLoadCert(const std::filesystem::path& p) {
  auto c = LoadCertificateFile(p);
  EXPECT_TRUE(c.ok()) << p << ": " << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

inline std::string Hex(const std::string& s) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
    out += ' ';
  }
  return out;
}

}  // namespace kubehsm::signer::pki::testutil
