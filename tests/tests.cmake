# tests.cmake - ctest registrations: one executable per tests/unit/test_*.c, plus
# the golden-model, conformance, CLI and fuzz tests (added further below).
set(_kiln_shared_default "${PROJECT_SOURCE_DIR}/../shared")
if(NOT EXISTS ${_kiln_shared_default} AND EXISTS "${PROJECT_SOURCE_DIR}/../../shared")
  set(_kiln_shared_default "${PROJECT_SOURCE_DIR}/../../shared")  # git worktree layout
endif()
set(KILN_SHARED_DIR "${_kiln_shared_default}" CACHE PATH "shared test data (onnx-backend-tests, models)")
get_filename_component(KILN_SHARED_DIR "${KILN_SHARED_DIR}" ABSOLUTE)

# kiln_testlib: the check counters of test.h and the shared operator-test harness
# (op_harness.h), compiled once and linked by every unit test.
add_library(kiln_testlib STATIC ${PROJECT_SOURCE_DIR}/tests/unit/test.c
            ${PROJECT_SOURCE_DIR}/tests/unit/op_harness.c)
target_include_directories(kiln_testlib PUBLIC ${PROJECT_SOURCE_DIR}/tests/unit)
target_link_libraries(kiln_testlib PUBLIC kiln_static)

file(GLOB KILN_UNIT_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${KILN_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE kiln_testlib)
  if(name MATCHES "^test_serve" AND TARGET kiln_serve)
    target_link_libraries(${name} PRIVATE kiln_serve)  # the server's own code (src/serve)
  endif()
  target_compile_definitions(${name} PRIVATE
    KILN_EXAMPLE_MODEL="${PROJECT_SOURCE_DIR}/examples/fmnist/fmnist_cnn.onnx"
    KILN_SHARED_DIR="${KILN_SHARED_DIR}")
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit TIMEOUT 120)
endforeach()
# The steady-state allocation test counts libkiln's allocations through --wrap.
if(TARGET test_steady_alloc)
  target_link_options(test_steady_alloc PRIVATE
    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=posix_memalign)
endif()

# the default Winograd choice (the plain run forces the path on for every shape)
add_test(NAME unit/test_conv_winograd_auto COMMAND test_conv_winograd auto)
set_tests_properties(unit/test_conv_winograd_auto PROPERTIES LABELS unit)

# The writer test re-runs every shared model (twice) and re-writes every conformance
# model: slow under the sanitizers.
# The integer operators pick their tap loops and row requantization from kn_cpu_isa:
# run them again capped at AVX2 and at plain C so every path is compared.
foreach(isa avx2 generic)
  add_test(NAME unit/test_ops_quant_gemm_${isa} COMMAND test_ops_quant_gemm)
  set_tests_properties(unit/test_ops_quant_gemm_${isa} PROPERTIES LABELS unit TIMEOUT 120
                       ENVIRONMENT "KILN_ISA=${isa}")
endforeach()

if(TEST unit/test_onnx_writer)
  set_tests_properties(unit/test_onnx_writer PROPERTIES TIMEOUT 600)
endif()

# libFuzzer targets (tests/fuzz/fuzz.cmake), built with -DKILN_FUZZ=ON and clang.
if(KILN_FUZZ AND EXISTS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz.cmake)
  include(${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz.cmake)
endif()

# Golden models: every NAME.onnx in shared/models and the bundled example, run on
# their recorded inputs and compared with PyTorch's outputs.
add_executable(test_golden ${PROJECT_SOURCE_DIR}/tests/golden/test_golden.c)
target_link_libraries(test_golden PRIVATE kiln_static)
add_test(NAME golden/models COMMAND test_golden ${KILN_SHARED_DIR}/models ${PROJECT_SOURCE_DIR}/examples/fmnist)
set_tests_properties(golden/models PROPERTIES LABELS golden TIMEOUT 600)
# The same at the basic level and with no optimization (the default is all).
foreach(level none basic)
  add_test(NAME golden/models_opt_${level} COMMAND test_golden --opt ${level} ${KILN_SHARED_DIR}/models
           ${PROJECT_SOURCE_DIR}/examples/fmnist)
  set_tests_properties(golden/models_opt_${level} PROPERTIES LABELS golden TIMEOUT 600)
endforeach()

if(TARGET kiln)
  # ONNX backend conformance: the node suite must not drop below the recorded pass
  # count; no case of the simple suite may fail.
  if(EXISTS ${KILN_SHARED_DIR}/onnx-backend-tests/node)
    file(STRINGS ${PROJECT_SOURCE_DIR}/tests/conformance_node_min_pass.txt KILN_NODE_MIN_PASS LIMIT_COUNT 1)
    add_test(NAME conformance/node COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/node
             --timeout 60 --list-failures --expect-pass ${KILN_NODE_MIN_PASS})
    set_tests_properties(conformance/node PROPERTIES LABELS conformance TIMEOUT 1800)
    # The same cases after the basic optimizer passes: same floor.
    add_test(NAME conformance/node_opt_basic COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/node
             --timeout 60 --list-failures --opt basic --expect-pass ${KILN_NODE_MIN_PASS})
    set_tests_properties(conformance/node_opt_basic PROPERTIES LABELS conformance TIMEOUT 1800)
    # The same cases on models written by kiln's ONNX writer and read back: the same
    # pass count, and bit-identical outputs from the re-read models.
    add_test(NAME conformance/node_roundtrip COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/node
             --roundtrip --timeout 60 --list-failures --expect-pass ${KILN_NODE_MIN_PASS})
    set_tests_properties(conformance/node_roundtrip PROPERTIES LABELS conformance TIMEOUT 1800)
    # ... and after the extended passes (fusions into com.microsoft operators).
    add_test(NAME conformance/node_opt_extended COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/node
             --timeout 60 --list-failures --opt extended --expect-pass ${KILN_NODE_MIN_PASS})
    set_tests_properties(conformance/node_opt_extended PROPERTIES LABELS conformance TIMEOUT 1800)
  endif()
  if(EXISTS ${KILN_SHARED_DIR}/onnx-backend-tests/simple)
    add_test(NAME conformance/simple COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/simple
             --timeout 60 --list-failures)
    set_tests_properties(conformance/simple PROPERTIES LABELS conformance TIMEOUT 600)
    add_test(NAME conformance/simple_opt_basic COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/simple
             --timeout 60 --list-failures --opt basic)
    set_tests_properties(conformance/simple_opt_basic PROPERTIES LABELS conformance TIMEOUT 600)
    add_test(NAME conformance/simple_opt_extended COMMAND kiln conformance ${KILN_SHARED_DIR}/onnx-backend-tests/simple
             --timeout 60 --list-failures --opt extended)
    set_tests_properties(conformance/simple_opt_extended PROPERTIES LABELS conformance TIMEOUT 600)
  endif()
  # The CLI as a user runs it.
  add_test(NAME cli/commands COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/test_cli.sh $<TARGET_FILE:kiln>
           ${PROJECT_SOURCE_DIR} ${KILN_SHARED_DIR})
  set_tests_properties(cli/commands PROPERTIES LABELS cli TIMEOUT 600)
  # kiln compare and the size report of kiln inspect.
  add_test(NAME cli/compare COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/test_compare.sh $<TARGET_FILE:kiln>
           ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli/compare PROPERTIES LABELS cli TIMEOUT 600)
  # issue 4's accuracy bar: each quantization mode of the example model on the
  # Fashion-MNIST test set (skipped, code 77, without Debian's data set).
  add_test(NAME cli/quant_accuracy COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/quant_accuracy.sh $<TARGET_FILE:kiln>
           ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli/quant_accuracy PROPERTIES LABELS "cli;accuracy" TIMEOUT 900 SKIP_RETURN_CODE 77)
  # kiln quantize: every mode on the example model.
  add_test(NAME cli/quantize COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/test_quantize.sh $<TARGET_FILE:kiln>
           ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli/quantize PROPERTIES LABELS cli TIMEOUT 300)
endif()

# The inference server (kiln serve), driven over HTTP.
include(${PROJECT_SOURCE_DIR}/tests/serve/serve.cmake)

# kiln calibrate on the example model (IDX, .npy and image sources, each method, bad input),
# and on shared models with token-id and several inputs.
if(TARGET kiln)
  add_test(NAME cli/calibrate COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/test_calibrate.sh $<TARGET_FILE:kiln>
           ${PROJECT_SOURCE_DIR} "$<$<TARGET_EXISTS:serve_make_images>:$<TARGET_FILE:serve_make_images>>"
           ${KILN_SHARED_DIR})
  set_tests_properties(cli/calibrate PROPERTIES LABELS cli TIMEOUT 300)
endif()
