# cmake -DREADME=README.md [-DBLOCK=N] -DSOURCE=tests/test_testing.cpp -P check_readme_example.cmake
# Fails unless the N-th (default: first) ```cpp block after "## Testing your
# steps" in README equals SOURCE from "#include <catch2/catch.hpp>" up to
# "// README example end".

function(slice text from to out)   # the text between the first `from` and the next `to`
  string(FIND "${text}" "${from}" begin)
  if(begin EQUAL -1)
    message(FATAL_ERROR "\"${from}\" not found")
  endif()
  string(LENGTH "${from}" skip)
  math(EXPR begin "${begin} + ${skip}")
  string(SUBSTRING "${text}" ${begin} -1 rest)
  string(FIND "${rest}" "${to}" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "\"${to}\" not found after \"${from}\"")
  endif()
  string(SUBSTRING "${rest}" 0 ${end} result)
  set(${out} "${result}" PARENT_SCOPE)
  math(EXPR end "${end} + ${begin}")
  string(SUBSTRING "${text}" ${end} -1 after)
  set(${out}_after "${after}" PARENT_SCOPE)   # what follows the slice
endfunction()

if(NOT DEFINED BLOCK)
  set(BLOCK 1)
endif()
file(READ "${README}" readme)
file(READ "${SOURCE}" source)
slice("${readme}" "\n## Testing your steps\n" "\n## " section)
set(rest "${section}")
foreach(i RANGE 1 ${BLOCK})
  slice("${rest}" "```cpp\n" "```\n" block)
  set(rest "${block_after}")
endforeach()
set(first_line "#include <catch2/catch.hpp>\n")
slice("${source}" "${first_line}" "// README example end\n" code)
string(PREPEND code "${first_line}")
if(NOT block STREQUAL code)
  set(copy "${CMAKE_CURRENT_BINARY_DIR}/readme_example_${BLOCK}.cpp")
  file(WRITE "${copy}" "${block}")
  message(FATAL_ERROR "README.md's \"Testing your steps\" example ${BLOCK} differs from the first "
                      "block of ${SOURCE}; the README's copy is in ${copy} (diff them)")
endif()
message(STATUS "README example ${BLOCK} matches ${SOURCE}")
