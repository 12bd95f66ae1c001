# Install the built library into a private prefix, then build and run the
# consumer against it twice: with find_package(sockserver) and with
# pkg-config.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix})

# 1. find_package
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/cmake
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DSANITIZE=${SANITIZE} -DCMAKE_BUILD_RPATH=${prefix}/lib)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake)
run(${WORK_DIR}/cmake/consumer)

# 2. pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pcdirs ${prefix}/lib*/pkgconfig ${prefix}/lib/*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "${pcdirs}")
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs sockserver
  OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR flags STREQUAL "")
  message(FATAL_ERROR "pkg-config sockserver failed (PKG_CONFIG_PATH=${pcdirs})")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
set(san "")
if(SANITIZE STREQUAL "address")
  set(san -fsanitize=address,undefined)
elseif(SANITIZE STREQUAL "thread")
  set(san -fsanitize=thread)
endif()
string(REGEX MATCH "-L[^ ;]+" libdir "${flags}")
string(SUBSTRING "${libdir}" 2 -1 libdir)
run(${C_COMPILER} ${san} ${SOURCE_DIR}/tests/consumer/consumer.c ${flags}
    -pthread -Wl,-rpath,${libdir} -o ${WORK_DIR}/consumer-pc)
run(${WORK_DIR}/consumer-pc)
