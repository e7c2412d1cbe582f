# signer/pki suites (issue 3). Included from tests/CMakeLists.txt.
kubehsm_test(pki_profiles_test LABEL unit SOURCES pki/profiles_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_versions_test LABEL unit SOURCES pki/versions_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_certificates_test LABEL unit SOURCES pki/certificates_test.cc LIBS kubehsm::pki)
# kubeadm config / kubeconfig YAML suites and common/base64.
kubehsm_test(pki_config_test LABEL unit SOURCES pki/config_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_kubeconfig_test LABEL unit SOURCES pki/kubeconfig_test.cc LIBS kubehsm::pki)
kubehsm_test(common_base64_test LABEL unit SOURCES common_base64_test.cc LIBS kubehsm::common OpenSSL::Crypto)
kubehsm_test(pki_init_test LABEL unit SOURCES pki/init_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_e2e_test LABEL e2e SOURCES pki/pki_e2e_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_maintenance_test LABEL unit SOURCES pki/maintenance_test.cc LIBS kubehsm::pki)
# CSR signing, sign-dir, issuance ledger and audit wiring (issue 4).
kubehsm_test(pki_sign_csr_test LABEL e2e SOURCES pki/sign_csr_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_sign_dir_e2e_test LABEL e2e SOURCES pki/sign_dir_e2e_test.cc LIBS kubehsm::pki kubehsm::ledger)
kubehsm_test(pki_join_e2e_test LABEL e2e SOURCES pki/join_e2e_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_issuance_test LABEL unit SOURCES pki/issuance_test.cc LIBS kubehsm::pki)
# Hostile media reaching the signing box (security issue 14: SAN types, policy regex cost,
# kubelet-serving allow-list, weak public keys, terminal escapes, FIFOs).
kubehsm_test(pki_hostile_input_test LABEL e2e SOURCES pki/hostile_input_test.cc LIBS kubehsm::pki)
# kubehsm kubeadm patches applied to real kubeadm manifests with kubectl patch --local.
kubehsm_test(pki_kubeadm_patches_e2e_test LABEL e2e SOURCES pki/kubeadm_patches_e2e_test.cc LIBS kubehsm::pki)
kubehsm_test(pki_kubeadm_patches_test LABEL unit SOURCES pki/kubeadm_patches_test.cc LIBS kubehsm::pki)
# Air-gapped renewal: renewal-csrs on the node, sign-dir --renew on the box, install-renewed.
kubehsm_test(pki_renewal_e2e_test LABEL e2e SOURCES pki/renewal_e2e_test.cc LIBS kubehsm::pki)
# Several signing boxes: ledger export/import merge, serial form, backup/destroy/restore of a box.
kubehsm_test(pki_backup_e2e_test LABEL e2e SOURCES pki/backup_e2e_test.cc LIBS kubehsm::pki)
