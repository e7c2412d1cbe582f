# Installation layout and the Debian package (CPack's DEB generator; `scripts/package` builds it).
#
# Installed with CMAKE_INSTALL_PREFIX=/usr (the package) or /usr/local (a source install):
#   bin/kubehsm                                   the command
#   share/kubehsm/create-token, softhsm2.conf.in  the SoftHSM token helper and its template
#   lib/systemd/system/kubehsm-signer.service     the `kubehsm serve` unit, ExecStart = bin/kubehsm
#   share/man/man1/kubehsm*.1.gz                  man pages generated from the --help texts (help2man)
#   share/bash-completion/completions/kubehsm     bash completion generated from the --help texts
#   share/doc/kubehsm/                            README.md, SECURITY.md, ARCHITECTURE.md
# The man pages and the completion script are made from the built binary at build time, so they
# can never disagree with it (packaging/gen-man, packaging/gen-completion).
include(GNUInstallDirs)

option(KUBEHSM_MAN_PAGES "Generate the man pages from the --help texts (needs help2man)" ON)

# The unit file names the installed binary and README: deploy/ holds the package's paths
# (/usr/bin/kubehsm); another prefix gets its own paths substituted.
file(READ "${PROJECT_SOURCE_DIR}/deploy/kubehsm-signer.service" _kubehsm_unit)
string(REPLACE "/usr/bin/kubehsm " "${CMAKE_INSTALL_FULL_BINDIR}/kubehsm " _kubehsm_unit "${_kubehsm_unit}")
string(REPLACE "file:///usr/share/doc/kubehsm/" "file://${CMAKE_INSTALL_FULL_DOCDIR}/" _kubehsm_unit
       "${_kubehsm_unit}")
file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/packaging/kubehsm-signer.service" CONTENT "${_kubehsm_unit}")
# systemd reads units from <prefix>/lib/systemd/system for both /usr and /usr/local (and on a
# merged-/usr Debian /lib is /usr/lib).
install(FILES "${PROJECT_BINARY_DIR}/packaging/kubehsm-signer.service" DESTINATION lib/systemd/system)

install(PROGRAMS "${PROJECT_SOURCE_DIR}/softhsm-config/create-token" DESTINATION ${CMAKE_INSTALL_DATADIR}/kubehsm)
install(FILES "${PROJECT_SOURCE_DIR}/softhsm-config/softhsm2.conf.in" DESTINATION ${CMAKE_INSTALL_DATADIR}/kubehsm)
install(FILES "${PROJECT_SOURCE_DIR}/README.md" "${PROJECT_SOURCE_DIR}/SECURITY.md" "${PROJECT_SOURCE_DIR}/ARCHITECTURE.md" DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Bash completion: always generated (bash only).
set(_kubehsm_completion "${PROJECT_BINARY_DIR}/packaging/kubehsm.bash-completion")
add_custom_command(
  OUTPUT "${_kubehsm_completion}"
  COMMAND "${PROJECT_SOURCE_DIR}/packaging/gen-completion" $<TARGET_FILE:kubehsm> "${_kubehsm_completion}"
  DEPENDS kubehsm "${PROJECT_SOURCE_DIR}/packaging/gen-completion"
  COMMENT "Generating the bash completion from kubehsm's --help texts"
  VERBATIM)
add_custom_target(kubehsm_completion ALL DEPENDS "${_kubehsm_completion}")
install(FILES "${_kubehsm_completion}" DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME kubehsm)

if(KUBEHSM_MAN_PAGES)
  find_program(KUBEHSM_HELP2MAN help2man)
  if(KUBEHSM_HELP2MAN)
    set(_kubehsm_man_dir "${PROJECT_BINARY_DIR}/packaging/man")
    add_custom_command(
      OUTPUT "${_kubehsm_man_dir}/stamp"
      COMMAND "${PROJECT_SOURCE_DIR}/packaging/gen-man" $<TARGET_FILE:kubehsm> "${_kubehsm_man_dir}"
      DEPENDS kubehsm "${PROJECT_SOURCE_DIR}/packaging/gen-man"
      COMMENT "Generating the man pages from kubehsm's --help texts (help2man)"
      VERBATIM)
    add_custom_target(kubehsm_man ALL DEPENDS "${_kubehsm_man_dir}/stamp")
    install(DIRECTORY "${_kubehsm_man_dir}/" DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 FILES_MATCHING PATTERN "*.1.gz")
  else()
    message(STATUS "help2man not found: no man pages (scripts/install-deps installs it)")
  endif()
endif()

# --- the Debian package ---------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kubehsm)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "kubehsm maintainers <kubehsm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Kubernetes PKI and service-account signing through a PKCS#11 token")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
    "kubehsm keeps a Kubernetes cluster's CA keys and service-account signing key inside a PKCS#11 token "
    "(an HSM, a TPM, SoftHSM) and does the cluster's PKI signing through it: kubeadm's certificates and "
    "kubeconfigs, CSRs, service-account tokens, and kube-apiserver's external JWT signer over a Unix socket.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies are computed by dpkg-shlibdeps from the binary. The rest is loaded at run
# time and invisible to it: pkcs11-provider (OpenSSL signs through it: required); SoftHSM2 (the
# default module and create-token's token; a hardware HSM's own module replaces it).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "pkcs11-provider")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "softhsm2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, opensc")
set(CPACK_STRIP_FILES ON)
# The package installs where this build was configured to (scripts/package: /usr), so the unit
# file's paths above are the package's.
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
include(CPack)
