# The generated bash completion and man pages (cmake/Packaging.cmake) checked against the binary's
# own --help texts, and the help texts themselves. Real binary, bash and man.
kubehsm_test(packaging_e2e_test LABEL e2e SOURCES packaging/packaging_test.cc)
add_dependencies(packaging_e2e_test kubehsm_completion)
target_compile_definitions(packaging_e2e_test PRIVATE
  KUBEHSM_TEST_COMPLETION="${PROJECT_BINARY_DIR}/packaging/kubehsm.bash-completion"
  KUBEHSM_TEST_MAN_DIR="${PROJECT_BINARY_DIR}/packaging/man")
if(TARGET kubehsm_man)
  add_dependencies(packaging_e2e_test kubehsm_man)
endif()
