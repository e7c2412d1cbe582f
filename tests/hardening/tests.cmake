# Hardening suite (issue 8 item 3): faults, hostile input and output-directory tricks against the
# real kubehsm binary on fresh SoftHSM tokens. Included from tests/CMakeLists.txt, so relative paths
# are relative to tests/. Needs the fault shim target (tests/fault_pkcs11/tests.cmake).

# kubehsm_hardening_test(NAME SOURCES ... [SERIAL]): like kubehsm_test (label e2e) but with the
# fault shim's path compiled in and, with SERIAL, RUN_SERIAL for tests that mount file systems.
function(kubehsm_hardening_test name)
  cmake_parse_arguments(T "SERIAL" "" "SOURCES" ${ARGN})
  if(NOT TARGET kubehsm_fault_pkcs11)
    message(WARNING "skipping ${name}: the fault shim target kubehsm_fault_pkcs11 is missing")
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE kubehsm::settings kubehsm_test_support GTest::gtest GTest::gtest_main
                        kubehsm::pki kubehsm::common)
  target_compile_definitions(${name} PRIVATE KUBEHSM_FAULT_PKCS11_PATH="$<TARGET_FILE:kubehsm_fault_pkcs11>")
  add_dependencies(${name} kubehsm kubehsm_fault_pkcs11)
  set(props LABELS e2e TIMEOUT 120)
  if(T_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name} PROPERTIES ${props} DISCOVERY_TIMEOUT 60)
endfunction()

kubehsm_hardening_test(hardening_fault_test SOURCES hardening/fault_test.cc)
kubehsm_hardening_test(hardening_input_test SOURCES hardening/input_test.cc)
# These mount small tmpfs file systems (root only; they skip otherwise) and run one at a time.
kubehsm_hardening_test(hardening_mount_test SERIAL SOURCES hardening/mount_test.cc)
