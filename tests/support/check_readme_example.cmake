# cmake -DREADME=README.md -DSOURCE=tests/test_testing.cpp -P check_readme_example.cmake
# Fails unless the first ```cpp block after "## Testing your steps" in README
# equals SOURCE from "#include <catch2/catch.hpp>" up to "// README example end".

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
endfunction()

file(READ "${README}" readme)
file(READ "${SOURCE}" source)
slice("${readme}" "\n## Testing your steps\n" "\n## " section)
slice("${section}" "```cpp\n" "```\n" block)
set(first_line "#include <catch2/catch.hpp>\n")
slice("${source}" "${first_line}" "// README example end\n" code)
string(PREPEND code "${first_line}")
if(NOT block STREQUAL code)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_example.cpp" "${block}")
  message(FATAL_ERROR "README.md's \"Testing your steps\" example differs from the first block "
                      "of ${SOURCE}; the README's copy is in "
                      "${CMAKE_CURRENT_BINARY_DIR}/readme_example.cpp (diff them)")
endif()
message(STATUS "README example matches ${SOURCE}")
