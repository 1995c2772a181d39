# fuzz.cmake - libFuzzer targets (included from tests/tests.cmake with -DKILN_FUZZ=ON;
# needs clang).  All of src/ is compiled again into a separate object library with
# fuzzer instrumentation + ASan/UBSan, so the normal targets are untouched.
# ctest runs each target for 20 s on a seed corpus copied from KILN_SHARED_DIR.
set(_kiln_shared_default "${PROJECT_SOURCE_DIR}/../shared")
if(NOT EXISTS ${_kiln_shared_default} AND EXISTS "${PROJECT_SOURCE_DIR}/../../shared")
  set(_kiln_shared_default "${PROJECT_SOURCE_DIR}/../../shared")  # git worktree layout
endif()
set(KILN_SHARED_DIR "${_kiln_shared_default}" CACHE PATH "shared test data (models, onnx-backend-tests)")
set(KILN_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)

# The per-ISA kernel files (src/kernels/*_avx2.c, *_avx512.c, *_amx.c) are compiled without
# instrumentation: the fuzzers reach them only through the kernels' plain entry
# points, and clang with ASan spends tens of minutes and gigabytes on their
# unrolled intrinsics.  They are linked in as ordinary objects
# (kiln_fuzz_isa_objs); everything else is instrumented.
set(KILN_FUZZ_ISA_SOURCES ${KILN_SOURCES})
list(FILTER KILN_FUZZ_ISA_SOURCES INCLUDE REGEX "src/kernels/[^/]*_(avx2|avx512|amx)\\.c$")
set(KILN_FUZZ_SOURCES ${KILN_SOURCES})
list(FILTER KILN_FUZZ_SOURCES EXCLUDE REGEX "src/kernels/[^/]*_(avx2|avx512|amx)\\.c$")
add_library(kiln_fuzz_isa_objs OBJECT ${KILN_FUZZ_ISA_SOURCES})
target_include_directories(kiln_fuzz_isa_objs PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
add_library(kiln_fuzz_objs OBJECT ${KILN_FUZZ_SOURCES})
target_include_directories(kiln_fuzz_objs PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_compile_options(kiln_fuzz_objs PRIVATE ${KILN_FUZZ_FLAGS})
set(KILN_FUZZ_OBJECTS $<TARGET_OBJECTS:kiln_fuzz_objs> $<TARGET_OBJECTS:kiln_fuzz_isa_objs>)

set(KILN_FUZZ_SEED_SCRIPT ${PROJECT_SOURCE_DIR}/tests/fuzz/run_fuzz.sh)
foreach(target onnx onnx_writer opt tensorproto npy image inflate ranges)
  add_executable(fuzz_${target} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_${target}.c ${KILN_FUZZ_OBJECTS})
  target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(fuzz_${target} PRIVATE ${KILN_FUZZ_FLAGS})
  target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_${target} PRIVATE m Threads::Threads)
  add_test(NAME fuzz/${target}
           COMMAND sh ${KILN_FUZZ_SEED_SCRIPT} $<TARGET_FILE:fuzz_${target}> ${target}
                   ${KILN_SHARED_DIR} ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus-${target} 20)
  set_tests_properties(fuzz/${target} PROPERTIES LABELS fuzz TIMEOUT 120)
endforeach()

# The server's parsers (src/serve): image decoding + preprocess, multipart.  All of
# kiln_serve is compiled again with the same instrumentation and linked with the
# libraries kiln_serve uses (libjpeg, libpng, libmicrohttpd, cJSON).
if(TARGET kiln_serve)
  add_library(kiln_fuzz_serve_objs OBJECT ${KILN_SERVE_SOURCES})
  target_include_directories(kiln_fuzz_serve_objs PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(kiln_fuzz_serve_objs PRIVATE ${KILN_FUZZ_FLAGS})
  target_link_libraries(kiln_fuzz_serve_objs PUBLIC PkgConfig::MHD PkgConfig::CJSON PkgConfig::PNG JPEG::JPEG)
  foreach(target serve_image multipart)
    add_executable(fuzz_${target} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_${target}.c
                   $<TARGET_OBJECTS:kiln_fuzz_serve_objs> ${KILN_FUZZ_OBJECTS})
    target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(fuzz_${target} PRIVATE ${KILN_FUZZ_FLAGS})
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${target} PRIVATE PkgConfig::MHD PkgConfig::CJSON PkgConfig::PNG JPEG::JPEG
                          m Threads::Threads)
    add_test(NAME fuzz/${target}
             COMMAND sh ${KILN_FUZZ_SEED_SCRIPT} $<TARGET_FILE:fuzz_${target}> ${target}
                     ${KILN_SHARED_DIR} ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus-${target} 20)
    set_tests_properties(fuzz/${target} PROPERTIES LABELS fuzz TIMEOUT 120)
  endforeach()
endif()

# The CLI's dataset reader (tools/kiln/idx.c, over zlib for gzipped files).
find_package(ZLIB)
if(ZLIB_FOUND)
  add_executable(fuzz_idx ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_idx.c ${PROJECT_SOURCE_DIR}/tools/kiln/idx.c
                 ${KILN_FUZZ_OBJECTS})
  target_include_directories(fuzz_idx PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tools/kiln)
  target_compile_options(fuzz_idx PRIVATE ${KILN_FUZZ_FLAGS})
  target_link_options(fuzz_idx PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_idx PRIVATE ZLIB::ZLIB m Threads::Threads)
  add_test(NAME fuzz/idx
           COMMAND sh ${KILN_FUZZ_SEED_SCRIPT} $<TARGET_FILE:fuzz_idx> idx
                   ${KILN_SHARED_DIR} ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus-idx 20)
  set_tests_properties(fuzz/idx PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
