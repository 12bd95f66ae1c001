# Unit tests of the example parsers. include()d from tests/CMakeLists.txt,
# normally after examples/parsers.cmake; with the examples switched off the
# parser library is defined here, since the tests need nothing else.
if(NOT TARGET ss_example_parsers)
  include(${CMAKE_CURRENT_LIST_DIR}/../examples/parsers.cmake)
endif()
if(NOT TARGET PkgConfig::CMOCKA)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

foreach(name test_upload_header test_http_parser)
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c
                 ${CMAKE_CURRENT_LIST_DIR}/parser_check.c)
  target_link_libraries(${name} PRIVATE ss_example_parsers PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS parsers)
endforeach()
