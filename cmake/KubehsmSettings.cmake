# Shared compile settings, linked PRIVATE into every kubehsm target.
add_library(kubehsm_settings INTERFACE)
add_library(kubehsm::settings ALIAS kubehsm_settings)
target_compile_options(kubehsm_settings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wformat=2
  -Wno-missing-field-initializers
  # GCC 12 reports false positives through std::variant (GCC bug 105562).
  -Wno-maybe-uninitialized)
target_compile_definitions(kubehsm_settings INTERFACE
  OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED
  KUBEHSM_DEFAULT_MODULE="${KUBEHSM_DEFAULT_MODULE}"
  KUBEHSM_VERSION="${PROJECT_VERSION}")
target_include_directories(kubehsm_settings INTERFACE ${PROJECT_SOURCE_DIR})

if(KUBEHSM_SANITIZE)
  set(_kubehsm_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(kubehsm_settings INTERFACE ${_kubehsm_san})
  target_link_options(kubehsm_settings INTERFACE ${_kubehsm_san})
endif()

# kubehsm_library(NAME SOURCES...): a static library kubehsm_NAME with alias kubehsm::NAME.
function(kubehsm_library name)
  add_library(kubehsm_${name} STATIC ${ARGN})
  add_library(kubehsm::${name} ALIAS kubehsm_${name})
  target_link_libraries(kubehsm_${name} PRIVATE kubehsm::settings)
  target_include_directories(kubehsm_${name} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# libFuzzer build (fuzz/, `fuzz/run`): clang only. Every kubehsm library is instrumented for
# coverage and built with ASan+UBSan; the fuzz targets add the libFuzzer driver at link time.
if(KUBEHSM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KUBEHSM_FUZZ needs clang++ (libFuzzer); configure a separate build dir with "
                        "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ (fuzz/run does this)")
  endif()
  set(_kubehsm_fuzz_san -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer)
  # -Wno-unknown-warning-option: the GCC-only -Wno-maybe-uninitialized above.
  target_compile_options(kubehsm_settings INTERFACE ${_kubehsm_fuzz_san} -Wno-unknown-warning-option)
  target_link_options(kubehsm_settings INTERFACE -fsanitize=address,undefined)
endif()
