// The issuance ledger: every certificate kubehsm issues, in an embedded SQLite database.
//
// One row per certificate, keyed by serial: serials are unique across all of the token's CAs
// (a UNIQUE constraint checked in the same write transaction that records the certificate), and
// across signing boxes once their ledgers are merged (Import refuses a serial both hold with
// different content). Every ledger has a box id (32 random lower-case hex digits, made when the
// ledger is created and kept by backups) naming the box that issued each row. A
// certificate is handed out only after its row is durable (WAL + synchronous=FULL, COMMIT returned).
// Several kubehsm processes may use one ledger at once: writers serialize on SQLite's lock (with a
// busy timeout), readers never block writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace kubehsm::ledger {

struct IssuanceRecord {
  std::string serial_hex;     // upper-case hex as `openssl x509 -serial` prints it, e.g. "01BB..."
  std::string issuer_ca;      // "ca", "etcd-ca", "front-proxy-ca", ...
  std::string subject;        // RFC 2253-like one-line subject ("O=...,CN=...")
  std::vector<std::string> sans;  // "DNS:x", "IP:1.2.3.4"
  std::string profile;        // kubeadm profile or custom profile name
  std::string operation;      // "init", "issue", "renew", "sign-csr", "sign-dir"
  int64_t not_before = 0;     // Unix seconds
  int64_t not_after = 0;
  std::string sha256_fingerprint;  // lower-case hex of SHA-256 over the DER
  std::string requester;      // user who ran kubehsm
  std::string host;           // host name of the signing box
  int64_t issued_at = 0;      // Unix seconds
  std::string cert_pem;
  std::string box_id;  // the box that issued it; empty on Record/Insert = this ledger's box
};

// What Import did: rows added, and rows already present with identical content (skipped).
struct ImportCounts {
  int64_t added = 0;
  int64_t identical = 0;
  std::vector<std::string> added_serials;  // normalized, in file order
};

struct ListFilter {
  std::optional<std::string> issuer_ca;
  std::optional<std::string> profile;
  std::size_t limit = 0;  // 0 = all
};

class Ledger final {
 public:
  // Opens (creating if needed, mode 0600) the ledger at `path`, never through a symlink (checked
  // with CheckStateFile for the database and its -wal/-shm files, and SQLITE_OPEN_NOFOLLOW).
  // Fails with kPermissionDenied for an untrusted file, kFailedPrecondition when the file is not
  // a kubehsm ledger or has a newer schema.
  static Result<std::unique_ptr<Ledger>> Open(const std::filesystem::path& path);

  Ledger(const Ledger&) = delete;  // owns the database connection
  Ledger& operator=(const Ledger&) = delete;
  ~Ledger();

  // Records one certificate durably. kAlreadyExists when the serial is already in the ledger
  // (the caller must discard that certificate and issue a new one with a fresh serial).
  Status Record(const IssuanceRecord& record);

  // Records one certificate, then runs `before_commit` (e.g. the audit append) inside the same
  // write transaction: the row is committed only when `before_commit` returns OK, and rolled back
  // otherwise (its error is returned). kAlreadyExists as Record (before `before_commit` runs).
  Status RecordThen(const IssuanceRecord& record, const std::function<Status()>& before_commit);

  // Runs `issue` inside one immediate write transaction: `issue` signs a certificate and returns
  // its record; the record is inserted and committed before this returns. A duplicate serial
  // rolls back and calls `issue` again (up to 5 times) so the caller gets a fresh serial.
  Result<IssuanceRecord> IssueInTransaction(const std::function<Result<IssuanceRecord>()>& issue);

  // True when `serial_hex` (any case) is recorded.
  Result<bool> Contains(const std::string& serial_hex);

  // One record by serial (any case). kNotFound when absent.
  Result<IssuanceRecord> Get(const std::string& serial_hex);

  // Records in issue order (oldest first), filtered.
  Result<std::vector<IssuanceRecord>> List(const ListFilter& filter = {});

  // Number of records.
  Result<int64_t> Count();

  // Merges `rows` (another box's export, already checked by the caller) in one immediate write
  // transaction: a serial already present with exactly the same content (every column, box id
  // included) is skipped; a serial present with any other content is a collision and fails the
  // whole import with kAlreadyExists naming the serial and both fingerprints. `before_commit`
  // (the audit record) runs with the counts before COMMIT; its error rolls everything back.
  // Nothing is changed unless OK is returned.
  Result<ImportCounts> Import(const std::vector<IssuanceRecord>& rows,
                              const std::function<Status(const ImportCounts&)>& before_commit);

  // Writes a consistent copy of the whole database to `dest` with SQLite's online backup API
  // (other processes may keep issuing meanwhile; the copy is one committed state, WAL contents
  // included). `dest` must not exist (kAlreadyExists); it is created 0600, never through a
  // symlink. On failure `dest` is removed.
  Status BackupTo(const std::filesystem::path& dest);

  // This ledger's box id (see the file comment).
  const std::string& box_id() const { return box_id_; }

  const std::filesystem::path& path() const { return path_; }

 private:
  struct Private {};

 public:
  Ledger(Private, sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}

 private:
  Status Exec(const char* sql);
  // Rolls back the open transaction after `cause` (OK for a planned retry); a failed ROLLBACK is
  // appended to the returned status, since the connection is then still inside the transaction.
  Status Abort(Status cause);
  Status Insert(const IssuanceRecord& r);

  sqlite3* db_;  // owned; closed in the destructor
  std::filesystem::path path_;
  std::string box_id_;
};

// The state directory (ledger.db, audit.log) gets the checks output directories get: it must be
// a directory owned by root or the effective user and not world-writable (nor writable by a group
// other than root's). kPermissionDenied naming the reason.
Status CheckStateDirectory(const std::filesystem::path& dir);

// A file in the state directory, when it exists: not a symlink, a regular file, owned by root or
// the effective user, not writable by others. OK when absent. kPermissionDenied otherwise.
Status CheckStateFile(const std::filesystem::path& file);

// The ledger/audit cross-check of `kubehsm audit verify`: every serial in the ledger must have a
// cert-issue, cert-renew or ledger-import audit record (`audited_serials`, hex in either form). kFailedPrecondition
// naming the count and the first serials that have none.
Status CheckLedgerAudited(Ledger& ledger, const std::set<std::string>& audited_serials);

// A serial as openssl prints it (`openssl x509 -serial`): upper-case hex of the big-endian bytes,
// an even number of digits (one leading 0 when the top nibble is empty), no other leading zeros.
// Accepts either form, any case, and ':' or ' ' separators: "1bbd", "01BBD" and "0001:BB:D" all
// give "01BBD".
std::string NormalizeSerialHex(const std::string& hex);

}  // namespace kubehsm::ledger
