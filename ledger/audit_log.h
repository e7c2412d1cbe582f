// The audit trail: an append-only, hash-chained log of security events (key generation, every
// certificate signed, renewals, refused requests, login failures, token signing in aggregate).
//
// Format: one JSON object per line: seq, time, uid (the effective uid of the writer), event,
// fields, prev, hash. The line without its trailing `,"hash":"..."` member is the
// record body; `hash` = hex SHA-256 of the body; the body carries `seq` (1, 2, ...) and `prev` (the
// previous record's hash; 64 zeros for the first). A head file beside the log (`<log>.head`,
// "seq hash", replaced atomically after every append) anchors the tail, so removing records from
// the end is detected too. Appends from several processes serialize on flock(2).
//
// Never put secrets in fields: callers log names, serials, fingerprints and outcomes only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "common/status.h"

namespace kubehsm::ledger {

class AuditLog final {
 public:
  // A log at `path` (created 0600 on first append).
  explicit AuditLog(std::filesystem::path path) : path_(std::move(path)) {}

  // Appends one event durably (fsync of the log, then the head). `fields` are string values.
  // Fails (nothing appended) when the log cannot be opened, its last line is partial or
  // malformed, or the write/fsync fails; callers that hand something out only after it is audited
  // (certificates, tokens) must treat a failure as "do not hand it out".
  Status Append(const std::string& event, const std::map<std::string, std::string>& fields);

  // Checks, without writing, that Append would find a well-formed tail (the same open, lock and
  // last-line checks). For commands that change state they cannot undo (key rotation): they
  // check first, so an audit failure stops them before the change.
  Status CheckAppendable() const;

  struct VerifyResult {
    int64_t records = 0;  // records that verified
    std::string head_hash;
    // Serials (upper-case hex) named by the cert-issue / cert-renew records and the `serials`
    // field of ledger-import records, for the ledger
    // cross-check (ledger/ledger.h CheckLedgerAudited).
    std::set<std::string> certificate_serials;
    // Records after the head file's record. One is what a writer killed between its two writes
    // (log, then head) leaves behind until the next append re-anchors the head: reported, not
    // an error. More than one cannot come from a crash and fails Verify.
    int64_t beyond_head = 0;
  };
  // Verifies the whole chain and the head anchor. On failure the message names the first bad
  // record ("record 17 (line 17): hash mismatch", "record 5 missing", "truncated after record 9",
  // "2 record(s) beyond the head (records 8 to 9) ...", ...), code kFailedPrecondition.
  // A single record beyond the head is not a failure (see VerifyResult::beyond_head).
  Result<VerifyResult> Verify() const;

  // Copies the log and its head into `dir` (audit.log, audit.log.head; written atomically, 0600)
  // while holding the log's lock, so no append falls between the two copies and the copy verifies
  // as the log did. Returns the number of records copied. Fails, writing nothing, when the log
  // cannot be opened or read, or either file already exists in `dir` (kAlreadyExists).
  Result<int64_t> CopyTo(const std::filesystem::path& dir) const;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path head_path() const { return path_.string() + ".head"; }

 private:
  std::filesystem::path path_;
};

}  // namespace kubehsm::ledger
