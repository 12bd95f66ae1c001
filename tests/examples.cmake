# The examples, run as separate processes and driven by real clients (nc,
# socat, curl, Python scripts written the articles' way), and started by
# systemd-socket-activate. include()d from tests/CMakeLists.txt when the
# examples are built.
add_library(ss_example_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/example_harness.c)
target_link_libraries(ss_example_harness PUBLIC ss_test_helpers)
target_compile_definitions(ss_example_harness PUBLIC
  SS_EXAMPLES_DIR="${PROJECT_BINARY_DIR}/examples"
  SS_TEST_CLIENTS_DIR="${CMAKE_CURRENT_LIST_DIR}/clients")

# Each test, and the example programs it runs (built first, so a test never
# runs a stale copy).
set(echo_programs echo_tcp_server echo_tcp_client echo_udp_server
    echo_udp_client echo_unix_server echo_unix_client)
set(chat_programs chat_server)
set(upload_programs upload_server upload_client)
set(http_programs http_server)
set(activation_programs echo_tcp_server echo_udp_server echo_unix_server)
set(proxy_programs tcp_proxy echo_tcp_server echo_unix_server http_server)
foreach(kind echo chat upload http activation proxy)
  set(name test_examples_${kind})
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
    add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
    target_link_libraries(${name} PRIVATE ss_example_harness ss_example_parsers)
    add_dependencies(${name} ${${kind}_programs})
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT 600 LABELS examples
      ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
  endif()
endforeach()

# HAProxy in front of two http_server examples (PROXY protocol v1 and v2,
# health checks, a backend killed), on loopback and across network
# namespaces; it skips, saying why, without haproxy or without root.
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_haproxy.c)
  add_executable(test_haproxy ${CMAKE_CURRENT_LIST_DIR}/test_haproxy.c)
  target_link_libraries(test_haproxy PRIVATE ss_example_harness)
  add_dependencies(test_haproxy http_server)
  add_test(NAME test_haproxy COMMAND test_haproxy)
  set_tests_properties(test_haproxy PROPERTIES TIMEOUT 600 LABELS examples
    ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
endif()
