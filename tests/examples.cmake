# The examples, run as separate processes and driven by real clients (nc,
# socat, curl, Python scripts written the articles' way). include()d from
# tests/CMakeLists.txt when the examples are built.
add_library(ss_example_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/example_harness.c)
target_link_libraries(ss_example_harness PUBLIC ss_test_helpers)
target_compile_definitions(ss_example_harness PUBLIC
  SS_EXAMPLES_DIR="${PROJECT_BINARY_DIR}/examples"
  SS_TEST_CLIENTS_DIR="${CMAKE_CURRENT_LIST_DIR}/clients")

foreach(name test_examples_echo test_examples_chat test_examples_upload
             test_examples_http)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
    add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
    target_link_libraries(${name} PRIVATE ss_example_harness ss_example_parsers)
    add_dependencies(${name} echo_tcp_server)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT 600 LABELS examples
      ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
  endif()
endforeach()
