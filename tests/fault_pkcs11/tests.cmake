# A fault-injecting PKCS#11 shim for tests (control-file format: header of fault_pkcs11.cc) and its
# own tests. Included from tests/CMakeLists.txt, so relative paths are relative to tests/.

# A dlopen-ed module, not linked by anything: only C_GetFunctionList is exported, and -z nodelete
# keeps it mapped after dlclose (late callers such as pkcs11-provider's atexit clean-up).
add_library(kubehsm_fault_pkcs11 SHARED ${CMAKE_CURRENT_LIST_DIR}/fault_pkcs11.cc)
target_link_libraries(kubehsm_fault_pkcs11 PRIVATE kubehsm::settings Threads::Threads ${CMAKE_DL_LIBS})
target_include_directories(kubehsm_fault_pkcs11 PRIVATE ${P11KIT_INCLUDE_DIRS})
set_target_properties(kubehsm_fault_pkcs11 PROPERTIES
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_link_options(kubehsm_fault_pkcs11 PRIVATE "LINKER:-z,nodelete")

kubehsm_test(fault_pkcs11_test LABEL softhsm SOURCES fault_pkcs11/fault_pkcs11_test.cc
             LIBS kubehsm::hsm kubehsm::common)
if(TARGET fault_pkcs11_test)
  target_compile_definitions(fault_pkcs11_test PRIVATE
    KUBEHSM_FAULT_PKCS11_PATH="$<TARGET_FILE:kubehsm_fault_pkcs11>")
  add_dependencies(fault_pkcs11_test kubehsm_fault_pkcs11)
endif()
