# commit.cmake - writes the commit mxray is built from into OUT (generated/core/commit.h),
# at every build, not only when cmake configures: `git describe --always --dirty` of SRC,
# or "unknown" outside a git checkout (a source tarball). The file is rewritten only when
# the commit changed, so an unchanged tree rebuilds nothing.
# usage: cmake -DSRC=<repository> -DOUT=<header> -P commit.cmake
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
endif()
file(WRITE "${OUT}.tmp" "/* commit.h - the commit mxray is built from (scripts/build/commit.cmake; generated). */\n"
  "#define MX_COMMIT \"${commit}\"\n")
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
