// Carrying a `kubeadm certs generate-csr` layout on removable media as a tar archive, in and out.
//
// Archive layout (what `tar -C DIR -cf csrs.tar .` gives after `kubeadm certs generate-csr
// --cert-dir DIR/pki --kubeconfig-dir DIR`): `pki/<leaf>.csr` and `pki/<leaf>.key` (leaves incl.
// `pki/etcd/...`), `<name>.conf` and `<name>.conf.csr` at the top level; a leading "./" is
// accepted. The signed archive holds `pki/<leaf>.crt`, `pki/ca.crt`, `pki/etcd/ca.crt`,
// `pki/front-proxy-ca.crt` and the completed `<name>.conf` files, so that
// `tar -C /etc/kubernetes -xf signed.tar` on the node puts everything where kubeadm looks.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace kubehsm::signer::pki {

// Largest archive kubehsm reads, and largest member.
inline constexpr std::size_t kMaxArchiveBytes = 16 << 20;
inline constexpr std::size_t kMaxArchiveMemberBytes = 1 << 20;
inline constexpr int kMaxArchiveEntries = 64;

// Extracts `archive` (tar, optionally gzip/xz/bzip2-compressed; at most kMaxArchiveEntries members) into `cert_dir`
// (members under `pki/`) and `kubeconfig_dir` (top-level members), each file written atomically with mode 0600. Nothing
// is written unless the whole archive is acceptable: every member must be a regular file (or one of the directories
// `pki/`, `pki/etcd/`) named exactly like one of GenerateCsrInputNames(), at most once and at most
// kMaxArchiveMemberBytes. Symbolic and hard links, devices, absolute paths, `..` and any other name are refused
// (kInvalidArgument naming the member).
Status ExtractGenerateCsrArchive(const std::filesystem::path& archive, const std::filesystem::path& cert_dir,
                                 const std::filesystem::path& kubeconfig_dir);

// Writes the outputs of SignGenerateCsrDir that exist (SignDirOutputNames(), from `cert_dir` and
// `kubeconfig_dir`) into a POSIX tar archive at `archive`, atomically (mode 0600; members owned by
// root, certificates 0644, kubeconfigs 0600). kNotFound when no output exists.
Status WriteSignedArchive(const std::filesystem::path& archive, const std::filesystem::path& cert_dir,
                          const std::filesystem::path& kubeconfig_dir);

// ExtractGenerateCsrArchive and WriteSignedArchive for any layout: `allowed_names` / `names` are
// archive names as in GenerateCsrInputNames() ("pki/..." lands in `cert_dir`, the rest in
// `kubeconfig_dir`); `layout` names the layout in messages ("a renewal CSR layout"). Same rules
// and failures.
Status ExtractLayoutArchive(const std::filesystem::path& archive, const std::filesystem::path& cert_dir,
                            const std::filesystem::path& kubeconfig_dir, const std::vector<std::string>& allowed_names,
                            const std::string& layout);
Status WriteLayoutArchive(const std::filesystem::path& archive, const std::filesystem::path& cert_dir,
                          const std::filesystem::path& kubeconfig_dir, const std::vector<std::string>& names);

}  // namespace kubehsm::signer::pki
