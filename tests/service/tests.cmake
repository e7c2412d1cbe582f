# `kubehsm serve` end to end (label e2e): the real daemon on a fresh SoftHSM token, called over its
# Unix socket by a real gRPC client (both API versions), tokens checked with plain OpenSSL and
# PyJWT. Included from tests/CMakeLists.txt, so source paths are relative to tests/.
add_library(kubehsm_serve_test_util STATIC ${CMAKE_CURRENT_LIST_DIR}/serve_test_util.cc)
target_link_libraries(kubehsm_serve_test_util PUBLIC kubehsm::proto kubehsm::common kubehsm_test_support
                      GTest::gtest OpenSSL::Crypto kubehsm::jwt PRIVATE kubehsm::settings)

# A one-call client run as another user (setpriv) by the peer-credential tests.
add_executable(kubehsm_signer_client ${CMAKE_CURRENT_LIST_DIR}/signer_client.cc)
target_link_libraries(kubehsm_signer_client PRIVATE kubehsm::settings kubehsm_serve_test_util)

kubehsm_test(serve_e2e_test LABEL e2e SOURCES service/serve_e2e_test.cc LIBS kubehsm_serve_test_util)
if(TARGET serve_e2e_test)
  target_compile_definitions(serve_e2e_test PRIVATE
    KUBEHSM_SIGNER_CLIENT="$<TARGET_FILE:kubehsm_signer_client>")
  add_dependencies(serve_e2e_test kubehsm_signer_client)
  if(TARGET kubehsm_fault_pkcs11)
    target_compile_definitions(serve_e2e_test PRIVATE KUBEHSM_FAULT_PKCS11_PATH="$<TARGET_FILE:kubehsm_fault_pkcs11>")
    add_dependencies(serve_e2e_test kubehsm_fault_pkcs11)
  endif()
endif()

# Service-account keys across control-plane nodes (label e2e): two `kubehsm serve` daemons on one
# shared token, and on one token per node with `sa export-public` / `sa import-public --bundle`,
# through a whole rotation; refused bundles import nothing.
kubehsm_test(serve_ha_e2e_test LABEL e2e SOURCES service/serve_ha_e2e_test.cc LIBS kubehsm_serve_test_util)
