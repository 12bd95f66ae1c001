# The soak program (tests/soak/run drives it): every model under hostile
# load. Not a CTest test: it runs for a given time, from tests/run.
# include()d from tests/CMakeLists.txt, after parsers.cmake.
if(NOT TARGET ss_example_parsers)
  include(${CMAKE_CURRENT_LIST_DIR}/../../examples/parsers.cmake)
endif()
add_executable(soak ${CMAKE_CURRENT_LIST_DIR}/soak.c)
target_link_libraries(soak PRIVATE sockserver ss_example_parsers Threads::Threads)
target_compile_definitions(soak PRIVATE _GNU_SOURCE)
# __asan_default_options: the shared sanitizer runtime only sees it when
# the executable exports it.
set_target_properties(soak PROPERTIES ENABLE_EXPORTS ON)
