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

# The PROXY protocol header parser of the library, compiled alone: it
# depends on nothing but libc and the public header.
add_executable(test_proxy_parser ${CMAKE_CURRENT_LIST_DIR}/test_proxy_parser.c
               ${CMAKE_CURRENT_LIST_DIR}/parser_check.c
               ${CMAKE_CURRENT_LIST_DIR}/../src/proxy.c)
target_include_directories(test_proxy_parser PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../include ${CMAKE_CURRENT_LIST_DIR}/../src)
target_link_libraries(test_proxy_parser PRIVATE PkgConfig::CMOCKA)
add_test(NAME test_proxy_parser COMMAND test_proxy_parser)
set_tests_properties(test_proxy_parser PROPERTIES TIMEOUT 60 LABELS parsers)
