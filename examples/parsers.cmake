# The two strict parsers of the examples: the upload protocol's JSON header
# and the static-file server's HTTP/1.1 requests. They depend on nothing,
# not even libsockserver, so that tests and fuzz targets can link them alone.
# include()d from examples/CMakeLists.txt.
add_library(ss_example_parsers STATIC
  ${CMAKE_CURRENT_LIST_DIR}/upload_header.c
  ${CMAKE_CURRENT_LIST_DIR}/http_parser.c)
target_include_directories(ss_example_parsers PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_compile_features(ss_example_parsers PRIVATE c_std_11)
