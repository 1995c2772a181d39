# serve.cmake - the server test: tests/serve/test_serve.sh starts `kiln serve` on a
# free loopback port and drives every endpoint and error path with curl.
# make_images writes the JPEG and PNG it uploads, with libjpeg and libpng.
if(TARGET kiln AND TARGET kiln_serve)
  add_executable(serve_make_images ${PROJECT_SOURCE_DIR}/tests/serve/make_images.c)
  target_link_libraries(serve_make_images PRIVATE PkgConfig::PNG JPEG::JPEG)
  add_test(NAME serve/http COMMAND sh ${PROJECT_SOURCE_DIR}/tests/serve/test_serve.sh
           $<TARGET_FILE:kiln> ${PROJECT_SOURCE_DIR} $<TARGET_FILE:serve_make_images>)
  set_tests_properties(serve/http PROPERTIES LABELS "serve;cli" TIMEOUT 120)
endif()
